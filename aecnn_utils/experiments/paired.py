"""Paired comparisons of two arms scored on the same cells, Holm-corrected within a table.

**Paired comparisons** (:func:`compare`). Two arms scored on the same cells: the difference of
their values; its standard error from a paired bootstrap (each draw resamples the slides once
for both arms and, on top, each arm's training seeds, so that the difference is one of training
procedures); its 95% interval and two-sided p-value (Student's t with the seeds' degrees of
freedom, from that standard error: three seeds estimate training noise loosely); and the
share of report halves on which the first arm wins. A difference is *shown* only when it
survives Holm's step-down correction over the comparisons of one table (the caption gives the
family size); the Holm interval is the interval at the comparison's Holm level (the step-down
stops at the first comparison, by p-value, whose Holm interval holds zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from aecnn_utils.experiments.scores import (
    ALPHA,
    ArmScores,
    GridResult,
    Metric,
    nanmean,
    t_quantile,
)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two arms on the same cells (see the module docstring)."""

    setting: str
    first: str
    second: str
    metric: str
    diff: float
    low: float
    high: float
    holm_low: float
    holm_high: float
    p: float
    p_holm: float
    wins: int
    n_splits: int
    family: int
    shown: bool

    @property
    def verdict(self) -> str:
        """``higher``, ``lower`` (the first arm against the second) or ``not shown``."""
        if not self.shown:
            return "not shown"
        return "higher" if self.diff > 0 else "lower"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family: all of ``pvalues``)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _seed_draws(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) values of an arm with its training seeds resampled on top of each slide draw:
    a mean over seeds drawn with replacement, its deviation scaled by sqrt(k / (k - 1)) so that
    its variance is the seeds' (unbiased) sd squared over k; one seed: no training noise
    can be drawn (the caption says so)."""
    k, n = per_seed.shape
    mean = nanmean(per_seed, 0)
    if k < 2:
        return mean
    pick = rng.integers(0, k, size=(k, n))
    resampled = nanmean(np.take_along_axis(per_seed, pick, axis=0), 0)
    return mean + math.sqrt(k / (k - 1)) * (resampled - mean)


def _seed_df(first: ArmScores, second: ArmScores, key: str) -> float:
    """Degrees of freedom of a comparison's statistic: the seeds' (k1 + k2 - 2) when both arms
    have several seeds, whose sd of training noise is then itself uncertain; else normal."""
    k1, k2 = len(first.replicates[key]), len(second.replicates[key])
    return float(k1 + k2 - 2) if min(k1, k2) > 1 else math.inf


def _p(z: float, df: float) -> float:
    """Two-sided p-value of a t (normal for infinite ``df``) statistic."""
    return float(2 * student_t.sf(abs(z), df)) if np.isfinite(df) else float(
        math.erfc(abs(z) / math.sqrt(2)))


def compare_scores(triples: Sequence[tuple[ArmScores, ArmScores, str]],
                   setting: str = "cross", seed: int = 0) -> list[Comparison]:
    """Paired comparisons of ``(first, second, metric key)``, Holm-corrected over all of
    them (the family; comparisons whose difference is undefined do not count).

    Each bootstrap draw resamples the slides once for both arms (the same draws: refused
    otherwise) and, on top, each arm's training seeds (:func:`_seed_draws`), so that a
    difference is one of training procedures, not of the weights these seeds happened to
    give. The difference's standard error is the sd of the drawn differences; its interval
    and p-value are Wald ones (Student's t with the seeds' degrees of freedom when both arms
    have several seeds, else normal), which resolve the small levels Holm's correction asks
    for (a percentile would need tens of thousands of draws)."""
    rng = np.random.default_rng(seed)
    cells = []
    for first, second, key in triples:
        if first.draws != second.draws:
            raise ValueError(f"{first.estimates[key].arm} and {second.estimates[key].arm} were "
                             "scored on different slide draws (cells, n_boot or seed): score "
                             "them in one score_grid call to compare them")
        a, b = first.estimates[key], second.estimates[key]
        draws = _seed_draws(first.replicates[key], rng) - _seed_draws(second.replicates[key],
                                                                        rng)
        finite = draws[np.isfinite(draws)]
        se = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        diff = a.value - b.value
        df = _seed_df(first, second, key)
        if not np.isfinite(se) or not np.isfinite(diff):
            p = math.nan
        else:
            p = _p(diff / se, df) if se > 0 else float(diff == 0)
        wins = int(np.sum(first.per_split[key] > second.per_split[key]))
        cells.append((a, b, key, diff, se, p, wins, df))
    pvalues = np.array([c[5] for c in cells], dtype=float)
    finite = np.isfinite(pvalues)
    adjusted = np.full(len(cells), math.nan)
    adjusted[finite] = holm(pvalues[finite])
    m = int(finite.sum())
    # Holm's levels: alpha / (m - rank), rank by p (ties: the first of them, the stricter)
    sorted_p = np.sort(pvalues[finite])
    out = []
    for i, (a, b, key, diff, se, p, wins, df) in enumerate(cells):
        rank = int(np.searchsorted(sorted_p, p, side="left")) if np.isfinite(p) else m - 1
        z95, zholm = t_quantile(ALPHA, df), t_quantile(ALPHA / max(m - rank, 1), df)
        out.append(Comparison(setting, a.arm, b.arm, key, float(diff), diff - z95 * se,
                              diff + z95 * se, diff - zholm * se, diff + zholm * se, p,
                              float(adjusted[i]), wins, a.n_splits, m,
                              bool(np.isfinite(adjusted[i]) and adjusted[i] < ALPHA)))
    return out


def compare(result: GridResult, pairs: Iterable[tuple[str, str]],
            metrics: Sequence[Metric | str] | None = None,
            setting: str = "cross") -> list[Comparison]:
    """Paired comparisons of arm pairs of ``result`` in ``setting`` (one table: one Holm
    family). Pairs naming an arm the grid lacks are skipped."""
    keys = [m.key if isinstance(m, Metric) else m for m in (metrics or result.metrics)]
    pairs = [(a, b) for a, b in pairs if (setting, a) in result.scores
             and (setting, b) in result.scores]
    return compare_scores([(result.scores[setting, a], result.scores[setting, b], key)
                           for a, b in pairs for key in keys], setting)


def comparisons_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """The comparisons as rows, with their verdicts."""
    return pd.DataFrame([{**vars(c), "verdict": c.verdict} for c in comparisons])


