"""The records of a grid: each run's scorings, each arm's estimates with nested choices and
intervals (:func:`score_arm`), the scored grid (:class:`GridResult`).

**Nested selection.** For split ``s`` the candidate with the best selection-half monitor (mean
over the seeds) is chosen, and split ``s``'s report half is scored with that candidate's runs,
each at its own epoch and threshold of the same half. An arm's value is the mean over splits of
those report-half scores (each the mean over seeds): it estimates the whole procedure, its
choices included. The old procedure, one candidate chosen by the mean over all splits, has
seen every report cell (each cell sits in many selection halves); :attr:`Estimate.all_cells`
keeps its figure so that the optimism shows.

**Intervals.** ``low``/``high``: a 95% bootstrap over slides (``patient_or_slide``) of the
value; each draw resamples the slides once and rescores every scoring of the arm on it, its
choices held fixed. ``new_low`` /
``new_high``: the range a score on a fresh set of slides, as many as a report half holds, would
fall in (95%), if those slides were drawn from the same population as ours (same collection,
stain and scanner; another lab's shift is not covered). Each split's selection and report halves
are disjoint sets of slides; the sd of the difference of one arm's score on the two halves,
over splits, divided by sqrt(2), estimates the sd of a score on one fresh half; the range adds
the uncertainty of the mean (normal approximation).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t

from aecnn_utils.evaluation import metrics as M
from aecnn_utils.training.prepare import PreparedData
from aecnn_utils.training.runs import RunResult, trained_on
from aecnn_utils.training.scoring import CI_UNIT, softmax, split_halves

if TYPE_CHECKING:
    from aecnn_utils.experiments.grid import Grid

#: Two-sided level of every interval and test.
ALPHA = 0.05

#: (setting, arm, candidate) -> that candidate's runs, one per seed.
GridRuns = dict[tuple[str, str, str], list[RunResult]]


@dataclass(frozen=True)
class Scoring:
    """One run on one split: class probabilities of the chosen epoch on every pool cell, the
    selection and report rows, the threshold chosen on the selection half (binary) and the
    selection half's monitor value at the chosen epoch."""

    probs: np.ndarray
    selection_rows: np.ndarray
    report_rows: np.ndarray
    threshold: float | None
    selection: float


def run_scorings(run: RunResult, data: PreparedData) -> list[Scoring]:
    """Every scoring of a finished run, from its stored outputs: one per repeated split, or
    the configured split's."""
    if run.metrics.get("data_fingerprint") != data.fingerprint:
        raise ValueError(f"{run.run_dir.name} was trained on other cells than the data given "
                         f"({run.metrics.get('data_fingerprint')} != {data.fingerprint}); "
                         "prepare the data of its own config")
    logits = run.epoch_logits()
    probs: dict[int, np.ndarray] = {}

    def at(epoch: int) -> np.ndarray:
        if epoch not in probs:
            probs[epoch] = softmax(logits[epoch - 1])
        return probs[epoch]

    m = run.metrics
    if "splits" in m:
        pool = data.frame("pool")
        return [Scoring(at(s["best_epoch"]), *split_halves(run.config, pool, s["split_seed"]),
                        s.get("threshold"), float(s["selection_value"]))
                for s in m["splits"]["per_split"]]
    return [Scoring(at(m["best_epoch"]), np.asarray(data.index["val"]),
                    np.asarray(data.index["test"]), m.get("threshold", {}).get("value"),
                    float(m["selection_value"]))]


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Metric:
    """A scalar metric of :data:`aecnn_utils.evaluation.metrics.SCALAR_METRICS` on the report
    cells: at 0.5 or at each split's selection-chosen threshold, on all cells or one publisher
    class."""

    name: str
    at_threshold: bool = False
    cls: str | None = None

    @property
    def key(self) -> str:
        """``name``, ``name@threshold``, ``name|class``."""
        return self.name + ("@threshold" if self.at_threshold else "") + (
            f"|{self.cls}" if self.cls else "")


#: The metrics of the compared tables: AUC, balanced accuracy at 0.5, sensitivity at 95%
#: specificity (threshold-free).
SCREENING: tuple[Metric, ...] = (Metric("roc_auc"), Metric("balanced_accuracy"),
                                 Metric("sens_at_spec95"))


@dataclass(frozen=True)
class Estimate:
    """One arm's figure for one metric in one setting (see the module docstring)."""

    setting: str
    arm: str
    metric: str
    value: float
    sd_splits: float
    sd_seeds: float
    low: float
    high: float
    new_low: float
    new_high: float
    n_seeds: int
    n_splits: int
    #: (candidate, splits that chose it), most chosen first; empty without candidates
    chosen: tuple[tuple[str, int], ...] = ()
    #: the figure when one candidate is chosen on every split's selection half at once
    all_cells: float = math.nan
    all_cells_choice: str = ""

    @property
    def spread(self) -> float:
        """The sd a table shows: over seeds when there are several, else over splits."""
        return self.sd_seeds if self.n_seeds > 1 else self.sd_splits


@dataclass
class ArmScores:
    """What :func:`score_arm` keeps of one arm in one setting, for records and comparisons."""

    estimates: dict[str, Estimate]
    replicates: dict[str, np.ndarray]  # metric key -> (seeds, n_boot): each seed's split mean
    per_split: dict[str, np.ndarray]   # metric key -> (n_splits,) report-half values
    chosen: list[str]                  # candidate chosen on each split
    draws: tuple                       # what the slide draws depend on: equal ones are paired


def _choose(values: np.ndarray, mode: str) -> int:
    """Index of the best finite value (lowest for ``min``); the first one on a tie."""
    v = np.where(np.isfinite(values), values, np.inf if mode == "min" else -np.inf)
    return int(np.argmin(v) if mode == "min" else np.argmax(v))


def _score(scoring: Scoring, rows: np.ndarray, labels: np.ndarray, metrics: Sequence[Metric],
           member: Mapping[str, np.ndarray], weights: np.ndarray | None
           ) -> dict[str, np.ndarray]:
    """Each metric of one scoring on ``rows`` (its report or selection rows): shape (1,)
    on the cells as they are, or (n_boot,) with ``weights``."""
    out: dict[str, np.ndarray] = {}
    by_kind: dict[tuple[bool, str | None], list[Metric]] = {}
    for m in metrics:
        by_kind.setdefault((m.at_threshold, m.cls), []).append(m)
    for (at_threshold, cls), group in by_kind.items():
        r = rows[member[cls][rows]] if cls else rows
        threshold = scoring.threshold if at_threshold else None
        p = scoring.probs[r]
        if r.size == 0 or (at_threshold and threshold is None):
            for m in group:
                out[m.key] = np.full(1 if weights is None else len(weights), np.nan)
            continue
        t = threshold if p.shape[1] == 2 else None
        pred = (p[:, 1] >= (0.5 if t is None else t)).astype(np.int64) if p.shape[1] == 2 \
            else np.argmax(p, axis=1)
        w = np.ones((1, r.size)) if weights is None else weights[:, r]
        defined = [m.name for m in group if p.shape[1] == 2 or m.name in M.MULTICLASS_METRICS]
        values = M.batch_metrics(labels[r], p, pred, w, defined)
        out.update({m.key: values.get(m.name, np.full(len(w), np.nan)) for m in group})
    return out


def nanmean(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """The mean over ``axis`` of the finite values (NaN where there are none)."""
    finite = np.isfinite(a)
    count = finite.sum(axis=axis)
    total = np.where(finite, a, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _clip(v: float) -> float:
    """A bound of a range of a score in [0, 1] (NaN stays NaN)."""
    return min(max(v, 0.0), 1.0) if np.isfinite(v) else math.nan


def _sd(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.std(ddof=1)) if v.size > 1 else math.nan


def score_arm(setting: str, arm: str, candidates: Mapping[str, Sequence[Sequence[Scoring]]],
              frame: pd.DataFrame, metrics: Sequence[Metric], mode: str, *,
              n_boot: int = 1000, seed: int = 0) -> ArmScores:
    """The estimates of one arm from its candidates' scorings (``candidate -> seed -> split
    -> Scoring``; every candidate has the same seeds and splits), with the choice of candidate
    made per split on the selection half (``mode``: the monitor's ``min`` or ``max``).

    ``frame``: the pool cells (``label``, ``patient_or_slide``, ``source_class``)."""
    names = list(candidates)
    table = [candidates[c] for c in names]
    n_seeds, n_splits = len(table[0]), len(table[0][0])
    if any(len(t) != n_seeds or any(len(s) != n_splits for s in t) for t in table):
        raise ValueError(f"{arm}: every candidate needs {n_seeds} seeds x {n_splits} splits")
    selection = np.array([[[s.selection for s in per_seed] for per_seed in t] for t in table])
    per_split_sel = nanmean(selection, 1)  # (candidates, splits)
    chosen = [_choose(per_split_sel[:, j], mode) for j in range(n_splits)]
    once = _choose(nanmean(per_split_sel, 1), mode)
    labels = frame["label"].to_numpy()
    member = {m.cls: (frame["source_class"] == m.cls).to_numpy() for m in metrics if m.cls}
    weights = M.slide_weights(frame[CI_UNIT].to_numpy(), n_boot, seed)

    def values(pick: Sequence[int], rows: str, w: np.ndarray | None) -> dict[str, np.ndarray]:
        """metric -> (seeds, splits, draws) of the picked candidate per split."""
        cells = [[_score(table[pick[j]][k][j], getattr(table[pick[j]][k][j], rows), labels,
                         metrics, member, w) for j in range(n_splits)] for k in range(n_seeds)]
        return {m.key: np.array([[c[m.key] for c in row] for row in cells]) for m in metrics}

    report, replicates = values(chosen, "report_rows", None), values(chosen, "report_rows",
                                                                     weights)
    held = values(chosen, "selection_rows", None)
    all_cells = values([once] * n_splits, "report_rows", None) if names != [""] else report
    counts = pd.Series([names[c] for c in chosen]).value_counts()
    est, reps, splits = {}, {}, {}
    for m in metrics:
        point = report[m.key][..., 0]                       # (seeds, splits)
        per_split = nanmean(point, 0)
        value = float(nanmean(nanmean(point, 1), 0))      # each seed's split mean, averaged
        per_seed = nanmean(replicates[m.key], 1)           # (seeds, draws), the same two steps
        boot = nanmean(per_seed, 0)
        finite = boot[np.isfinite(boot)]
        low, high = (np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2]) if finite.size
                     else (math.nan, math.nan))
        half = math.nan
        if not m.at_threshold:  # the threshold pins the selection half's recall: no gap there
            gap = per_split - nanmean(held[m.key][..., 0], 0)
            sd_new = _sd(gap) / math.sqrt(2)
            se = _sd(finite) if finite.size > 1 else math.nan
            if np.isfinite(sd_new):
                half = t_quantile(ALPHA, math.inf) * math.sqrt(sd_new ** 2 + se ** 2)
        est[m.key] = Estimate(
            setting, arm, m.key, value, _sd(per_split), _sd(nanmean(point, 1)),
            float(low), float(high), _clip(value - half), _clip(value + half), n_seeds,
            n_splits, tuple(counts.items()) if names != [""] else (),
            float(nanmean(nanmean(all_cells[m.key][..., 0], 1), 0)),
            names[once] if names != [""] else "")
        reps[m.key], splits[m.key] = per_seed, per_split
    draws = (hashlib.sha256(pd.util.hash_pandas_object(frame[[CI_UNIT, "label"]], index=False)
                            .to_numpy().tobytes()).hexdigest(), n_boot, seed)
    return ArmScores(est, reps, splits, [names[c] for c in chosen], draws)


@dataclass
class GridResult:
    """The scored grid: one :class:`ArmScores` per (setting, arm), and what the tables need."""

    grid: Grid
    metrics: tuple[Metric, ...]
    scores: dict[tuple[str, str], ArmScores]
    runs: GridRuns
    data: dict[str, str]  # setting -> the data's notice

    def estimate(self, arm: str, metric: str | Metric, setting: str = "cross") -> Estimate:
        """The record of ``arm`` for ``metric`` (a :class:`Metric` or its key)."""
        key = metric.key if isinstance(metric, Metric) else metric
        return self.scores[setting, arm].estimates[key]

    def chosen_runs(self, setting: str = "cross") -> dict[str, list[RunResult]]:
        """Arm -> the runs of the candidate most splits chose (an arm without candidates: its
        runs), for what needs one config's runs (curves, confusion matrices, Grad-CAM)."""
        out = {}
        for arm in self.grid.arms:
            if (setting, arm.name) in self.scores:
                chosen = self.scores[setting, arm.name].chosen
                out[arm.name] = self.runs[setting, arm.name, max(set(chosen), key=chosen.count)]
        return out

    def estimates(self) -> list[Estimate]:
        """Every record, by setting, then arm, then metric."""
        return [e for s in self.scores.values() for e in s.estimates.values()]

    def frame(self) -> pd.DataFrame:
        """Every record as a row (the CSV the tables are written from), with each arm's group,
        whether it is transductive, and where its runs trained."""
        devices: dict[tuple[str, str], set[str]] = {}
        for (setting, arm_name, _), rs in self.runs.items():  # once per run, not per record
            devices.setdefault((setting, arm_name), set()).update(map(trained_on, rs))
        rows = []
        for e in self.estimates():
            arm = self.grid.arm(e.arm)
            rows.append({**vars(e), "chosen": "; ".join(f"{c}: {n}" for c, n in e.chosen),
                         "group": arm.group, "transductive": arm.transductive,
                         "device": ", ".join(sorted(devices.get((e.setting, e.arm), ()))),
                         "data": self.data[e.setting], "profile": self.grid.profile})
        return pd.DataFrame(rows)


def t_quantile(level: float, df: float) -> float:
    """The t (or normal) quantile that leaves ``level / 2`` in each tail."""
    return float(student_t.ppf(1 - level / 2, df) if np.isfinite(df) else
                 norm.ppf(1 - level / 2))


