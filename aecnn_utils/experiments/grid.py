"""The experiment grid: arms x seeds x settings, every choice made inside each split, paired tests.

One grid builds every compared table of the kit: the learning-rate grid and Table 2 (arms are
models, their candidates learning rates), the cross-dataset study (arms are methods) and the
ablations (arms are config changes of AECNN).

* An :class:`Arm` is a named config change against the grid's base. It may hold
  *candidates* (further changes: learning rates, layer tables, methods): one of them is chosen
  **per split, on that split's selection half**, never once on all cells.
* Every (setting, arm, candidate, seed) is one training run (reused when finished,
  :func:`aecnn_utils.training.engine.train_config`). The settings are ``cross`` (train SIPaKMeD, the
  profile's repeated selection/report splits of the validation cells) and ``in_domain`` (one
  grouped SIPaKMeD split, one seed: marked as such).
* A run's *scorings* come from what it stored (``epochs.npz`` and ``metrics.json``): for
  each split the epoch (early stopping replayed), the threshold and the temperature chosen on
  its selection half (:mod:`aecnn_utils.training.scoring`), and the selection half's monitor there.

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

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from scipy.stats import t as student_t
from tqdm.auto import tqdm

from aecnn_utils.core.errors import TrainingDiverged, warn
from aecnn_utils.evaluation import metrics as M
from aecnn_utils.experiments.morphology import fit_reference
from aecnn_utils.models import model_defaults
from aecnn_utils.training.config import MONITORS, RunConfig, profile_config
from aecnn_utils.training.engine import train_config
from aecnn_utils.training.prepare import PreparedData, prepare_data
from aecnn_utils.training.runs import RunResult, trained_on
from aecnn_utils.training.scoring import CI_UNIT, softmax, split_halves

#: In-domain: one SIPaKMeD split, grouped by cluster image, 60/20/20.
IN_DOMAIN: dict[str, Any] = {"protocol": "within", "train": ("sipakmed",), "val_fraction": 0.2,
                             "test_fraction": 0.2, "n_splits": 1}
#: Setting name -> config changes.
SETTINGS: dict[str, dict[str, Any]] = {"cross": {}, "in_domain": IN_DOMAIN}
#: Words for the settings, in tables and sentences.
SETTING_WORDS: dict[str, str] = {"cross": "across datasets", "in_domain": "in-domain"}
#: Training seeds across datasets, by profile (others: the profile's own seeds). One seed's
#: training noise is as large as the effects tested, so every compared arm has three.
CROSS_SEEDS: dict[str, tuple[int, ...]] = {"smoke": (0,), "cpu": (0, 1, 2)}
#: Fields that hold a mapping: an arm's change is merged into the base's, not put in its place.
NESTED_FIELDS: tuple[str, ...] = ("augment", "model_kwargs")
#: Two-sided level of every interval and test.
ALPHA = 0.05


# ----------------------------------------------------------------------------- definitions
def merge_changes(*changes: Mapping[str, Any]) -> dict[str, Any]:
    """Config changes applied in order; :data:`NESTED_FIELDS` are merged key by key."""
    out: dict[str, Any] = {}
    for change in changes:
        for key, value in change.items():
            if key in NESTED_FIELDS and isinstance(value, Mapping):
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


@dataclass(frozen=True)
class Arm:
    """A named config change, optionally with candidates chosen per split.

    ``candidates`` maps a name to a further change; empty means the arm is one config.
    ``transductive``: the arm looks at the unlabelled target images (AdaBN). ``reference``:
    the nucleus-feature classifier (:mod:`aecnn_utils.experiments.morphology`), fitted, not trained.
    """

    name: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    candidates: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group: str = ""
    transductive: bool = False
    reference: bool = False

    def options(self) -> dict[str, Mapping[str, Any]]:
        """Candidate name -> its change (``{"": {}}`` for an arm without candidates)."""
        return dict(self.candidates) or {"": {}}


@dataclass(frozen=True)
class Grid:
    """Arms x seeds x settings under a profile; ``base`` is the change every config gets.

    Configs never read the profile's tuned file (``<profile>_tuned.yaml``): what a grid
    reports is chosen inside each split, so its own record cannot feed back into it."""

    profile: str
    arms: tuple[Arm, ...]
    settings: tuple[str, ...] = ("cross",)
    base: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad:
            raise ValueError(f"setting {bad[0]!r} is not valid; choose one of: "
                             f"{', '.join(SETTINGS)}")

    def arm(self, name: str) -> Arm:
        """The arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r}; the grid has: {', '.join(a.name for a in self.arms)}")

    def cross_seeds(self) -> tuple[int, ...]:
        """The training seeds across datasets: ``seeds``, else the profile's
        :data:`CROSS_SEEDS`, else the profile's own."""
        if self.seeds is not None:
            return tuple(self.seeds)
        return CROSS_SEEDS.get(self.profile) or profile_config(self.profile).seeds

    def config(self, arm: Arm, candidate: str, setting: str,
               **overrides: Any) -> RunConfig:
        """The config of one arm's candidate in one setting; in-domain trains the first seed
        only. Model arguments equal to the model's defaults are dropped, so that equal models
        share their runs."""
        changes = merge_changes({"seeds": self.cross_seeds()}, self.base, overrides,
                                arm.changes, arm.options()[candidate], SETTINGS[setting])
        if setting != "cross":  # in-domain: one seed, marked as such in the captions
            changes["seeds"] = tuple(changes["seeds"])[:1]
        model = str(changes.get("model", RunConfig.model))
        defaults = model_defaults(model)
        kwargs = {k: v for k, v in changes.get("model_kwargs", {}).items()
                  if k not in defaults or defaults[k] != v}
        return profile_config(self.profile, recipe=False, tuned=False,
                              **{**changes, "model_kwargs": kwargs})


#: (setting, arm, candidate) -> that candidate's runs, one per seed.
GridRuns = dict[tuple[str, str, str], list[RunResult]]


def run_grid(grid: Grid, runs_dir: str | Path | None = None, *, progress: bool = True,
             epoch_bars: bool = False, **overrides: Any) -> GridRuns:
    """Train (or reuse) every run of the grid. ``overrides`` go to every config (e.g.
    ``data_root``, ``epochs``); ``progress`` shows one bar over the grid's configs,
    ``epoch_bars`` also each run's epochs. A candidate whose training diverges (loss NaN or
    infinite) is warned about and holds no runs: it is never chosen."""
    jobs = [(setting, arm, candidate) for setting in grid.settings for arm in grid.arms
            for candidate in arm.options()]
    out: GridRuns = {}
    for setting, arm, candidate in tqdm(jobs, desc="grid", disable=not progress):
        config = grid.config(arm, candidate, setting, **overrides)
        if arm.reference:
            out[setting, arm.name, candidate] = [fit_reference(config, runs_dir,
                                                               progress=epoch_bars)]
            continue
        try:
            out[setting, arm.name, candidate] = train_config(config, runs_dir,
                                                             progress=epoch_bars)
        except TrainingDiverged as exc:
            if len(arm.options()) < 2:
                raise
            warn(f"{arm.name} at {candidate} diverged and is never chosen: {exc}")
            out[setting, arm.name, candidate] = []
    return out


def grid_data(grid: Grid, **overrides: Any) -> dict[str, PreparedData]:
    """The cells each setting's runs share (prepared once per setting)."""
    plain = Arm("plain")
    return {s: prepare_data(grid.config(plain, "", s, **overrides)) for s in grid.settings}


# ----------------------------------------------------------------------------- scorings
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
    logits = np.load(run.run_dir / "epochs.npz")["logits"]
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


def _nanmean(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
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
    per_split_sel = _nanmean(selection, 1)  # (candidates, splits)
    chosen = [_choose(per_split_sel[:, j], mode) for j in range(n_splits)]
    once = _choose(_nanmean(per_split_sel, 1), mode)
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
        per_split = _nanmean(point, 0)
        value = float(_nanmean(_nanmean(point, 1), 0))      # each seed's split mean, averaged
        per_seed = _nanmean(replicates[m.key], 1)           # (seeds, draws), the same two steps
        boot = _nanmean(per_seed, 0)
        finite = boot[np.isfinite(boot)]
        low, high = (np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2]) if finite.size
                     else (math.nan, math.nan))
        half = math.nan
        if not m.at_threshold:  # the threshold pins the selection half's recall: no gap there
            gap = per_split - _nanmean(held[m.key][..., 0], 0)
            sd_new = _sd(gap) / math.sqrt(2)
            se = _sd(finite) if finite.size > 1 else math.nan
            if np.isfinite(sd_new):
                half = _quantile(ALPHA, math.inf) * math.sqrt(sd_new ** 2 + se ** 2)
        est[m.key] = Estimate(
            setting, arm, m.key, value, _sd(per_split), _sd(_nanmean(point, 1)),
            float(low), float(high), _clip(value - half), _clip(value + half), n_seeds,
            n_splits, tuple(counts.items()) if names != [""] else (),
            float(_nanmean(_nanmean(all_cells[m.key][..., 0], 1), 0)),
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


def score_grid(grid: Grid, runs: GridRuns, data: Mapping[str, PreparedData],
               metrics: Sequence[Metric] = SCREENING, *, n_boot: int | None = None,
               seed: int = 0) -> GridResult:
    """Score every arm of ``grid`` from its runs (:func:`run_grid`) on the cells of ``data``
    (:func:`grid_data`): nested choices, intervals, new-slides ranges (module docstring).
    Every arm of a setting is rescored on the same slide draws (``seed``; ``n_boot`` of them,
    default the runs' config's), so any two can be compared by :func:`compare`."""
    scores = {}
    for setting in grid.settings:
        pool = data[setting].frame("pool")
        for arm in grid.arms:
            per_candidate = {c: [run_scorings(r, data[setting])
                                 for r in runs[setting, arm.name, c]]
                             for c in arm.options() if runs[setting, arm.name, c]}
            if not per_candidate:
                raise TrainingDiverged(f"every candidate of {arm.name} diverged "
                                       f"({', '.join(arm.options())}); try lower rates "
                                       "(--lrs) or amp=False")
            first = next(rs[0] for (s, a, _), rs in runs.items()
                         if s == setting and a == arm.name and rs)
            scores[setting, arm.name] = score_arm(
                setting, arm.name, per_candidate, pool, metrics,
                MONITORS[first.config.monitor], n_boot=n_boot or first.config.n_boot,
                seed=seed)
    return GridResult(grid, tuple(metrics), scores, runs,
                      {s: d.source.notice for s, d in data.items()})


def score_runs(results: Mapping[str, Sequence[RunResult]], data: PreparedData,
               metrics: Sequence[Metric] = SCREENING, *, seed: int = 0) -> GridResult:
    """Finished runs of one config each (``name -> its seeds' runs``, e.g. what ``train``
    trained) scored as the arms of a grid without candidates, on the same slide draws: the
    records behind the tables of ``train`` and notebook 03 (:func:`wide_table`)."""
    first = next(rs[0] for rs in results.values() if rs)
    if first.config.protocol == "kfold":
        raise ValueError("k-fold runs score different cells per fold: read each fold's "
                         "metrics.json, or train protocol=cross or within")
    setting = "cross" if first.config.protocol == "cross" else "in_domain"
    names = [name for name, rs in results.items() if rs]
    grid = Grid(first.config.profile, tuple(Arm(name) for name in names), (setting,))
    runs = {(setting, name, ""): list(results[name]) for name in names}
    return score_grid(grid, runs, {setting: data}, metrics, seed=seed)


# ----------------------------------------------------------------------------- comparisons
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
    mean = _nanmean(per_seed, 0)
    if k < 2:
        return mean
    pick = rng.integers(0, k, size=(k, n))
    resampled = _nanmean(np.take_along_axis(per_seed, pick, axis=0), 0)
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


def _quantile(level: float, df: float) -> float:
    """The t (or normal) quantile that leaves ``level / 2`` in each tail."""
    return float(student_t.ppf(1 - level / 2, df) if np.isfinite(df) else
                 norm.ppf(1 - level / 2))


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
        z95, zholm = _quantile(ALPHA, df), _quantile(ALPHA / max(m - rank, 1), df)
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


# ----------------------------------------------------------------------------- formatters
#: Readable metric names.
METRIC_WORDS: dict[str, str] = {
    "roc_auc": "AUC", "balanced_accuracy": "Bal. acc. (%)",
    "sens_at_spec95": "Sens. @ 95% spec. (%)", "accuracy": "Accuracy (%)",
    "precision": "Precision (%)", "recall": "Recall (%)", "specificity": "Specificity (%)",
    "f1": "F1-Score (%)", "sensitivity": "Sens. (%)"}


def metric_label(key: str) -> str:
    """A column name for a metric key (``recall@threshold|carcinoma_in_situ`` reads
    "Recall (%), at the selection threshold, carcinoma in situ")."""
    name, _, cls = key.partition("|")
    name, _, at = name.partition("@")
    label = METRIC_WORDS.get(name, name)
    return label + (", at the selection threshold" if at else "") + (
        f", {cls.replace('_', ' ')}" if cls else "")


def _scale(key: str) -> tuple[float, int]:
    return (1.0, 3) if key.startswith("roc_auc") else (100.0, 1)


def cell(e: Estimate) -> str:
    """A table cell: ``value ± sd [low, high]`` (AUC as a fraction, the rest in percent)."""
    scale, digits = _scale(e.metric)
    if not np.isfinite(e.value):
        return "-"
    text = f"{scale * e.value:.{digits}f}"
    if np.isfinite(e.spread):
        text += f" ± {scale * e.spread:.{digits}f}"
    if np.isfinite(e.low) and np.isfinite(e.high):
        text += f" [{scale * e.low:.{digits}f}, {scale * e.high:.{digits}f}]"
    return text


def new_slides_cell(e: Estimate) -> str:
    """The new-slides range as ``low-high``."""
    scale, digits = _scale(e.metric)
    if not (np.isfinite(e.new_low) and np.isfinite(e.new_high)):
        return "-"
    return f"{scale * e.new_low:.{digits}f}-{scale * e.new_high:.{digits}f}"


def words(c: Comparison, labels: Mapping[str, str] | None = None,
          verdict: bool = True) -> str:
    """A comparison in words: ``first vs second, AUC: +0.050 [-0.010, 0.110] (Holm ...),
    first higher on 14 of 20 report halves: not shown`` (the verdict left out with
    ``verdict=False``, for a caller that words it itself)."""
    labels = labels or {}
    scale, digits = _scale(c.metric)
    name = metric_label(c.metric).removesuffix(" (%)")
    unit = "" if scale == 1 else " points"
    halves = (f"; {labels.get(c.first, c.first)} higher on {c.wins} of {c.n_splits} report "
              "halves" if c.n_splits > 1 else "")
    said = {"higher": "higher, shown", "lower": "lower, shown"}.get(c.verdict, "not shown")
    return (f"{labels.get(c.first, c.first)} vs {labels.get(c.second, c.second)}, {name}: "
            f"{scale * c.diff:+.{digits}f}{unit} [{scale * c.low:+.{digits}f}, "
            f"{scale * c.high:+.{digits}f}] (Holm interval [{scale * c.holm_low:+.{digits}f}, "
            f"{scale * c.holm_high:+.{digits}f}], p {c.p_holm:.3f} over {c.family})"
            f"{halves}" + (f": **{said}**" if verdict else ""))


def wide_table(result: GridResult, columns: Sequence[tuple[str, str]],
               labels: Mapping[str, str] | None = None, new_slides: str | None = None
               ) -> pd.DataFrame:
    """Readable table, one row per arm: a :func:`cell` per ``(setting, metric key)`` column,
    and with ``new_slides`` (a metric key) its range on new slides across datasets."""
    labels = labels or {}
    rows = []
    for arm in result.grid.arms:
        row = {"Arm": labels.get(arm.name, arm.name) + (" (transductive)"
                                                        if arm.transductive else "")}
        for setting, key in columns:
            if (setting, arm.name) in result.scores:
                head = f"{metric_label(key)}, {SETTING_WORDS[setting]}"
                row[head] = cell(result.estimate(arm.name, key, setting))
        if new_slides and ("cross", arm.name) in result.scores:
            row[f"{metric_label(new_slides)}, new slides (95%)"] = new_slides_cell(
                result.estimate(arm.name, new_slides))
        rows.append(row)
    return pd.DataFrame(rows)


def training_line(result: GridResult, labels: Mapping[str, str] | None = None,
                  setting: str = "cross") -> str:
    """``- Training time per run ...: A 1.4 min, B 8.0 min.``: each arm's mean over its runs
    in ``setting``, as each run recorded it (the reference, fitted not trained, left out)."""
    labels = labels or {}
    minutes: dict[str, list[float]] = {}
    for (s, arm, _), runs in result.runs.items():
        if s == setting and not result.grid.arm(arm).reference:
            minutes.setdefault(arm, []).extend(r.metrics.get("train_seconds", np.nan) / 60
                                               for r in runs)
    return ("- Training time per run (wall clock on its device, as each run recorded it; other "
            f"work may have shared the machine; {SETTING_WORDS[setting]}): " + ", ".join(
                f"{labels.get(a, a)} {np.nanmean(m):.1f} min" for a, m in minutes.items() if m)
            + ".")


#: Metrics that need no threshold.
THRESHOLD_FREE: frozenset[str] = frozenset({"roc_auc", "sens_at_spec95"})


def threshold_words(metrics: Sequence[Metric]) -> str:
    """Which threshold a table's metrics are scored at: 0.5, or the threshold each run chose
    on its split's selection half."""
    groups: dict[bool, dict[str, None]] = {}
    for m in metrics:
        if m.name not in THRESHOLD_FREE:
            groups.setdefault(m.at_threshold, {})[metric_label(m.name).removesuffix(" (%)")] = None
    if not groups:
        return "AUC and sensitivity at 95% specificity need no threshold."
    where = {False: "at the threshold 0.5",
             True: "at the threshold each run chose on its split's selection half"}
    return ("Scored " + "; ".join(f"{', '.join(names)} {where[at]}"
                                  for at, names in groups.items())
            + " (AUC and sensitivity at 95% specificity need none).")


def grid_caption(result: GridResult, what: str, family: int | None = None,
                 metrics: Sequence[Metric] | None = None) -> str:
    """What a grid table's cells are, from the result: seeds, splits, intervals, family, and
    the threshold of ``metrics`` (the table's; default every metric of the result)."""
    parts = []
    for setting in result.grid.settings:
        shapes = sorted({(e.n_seeds, e.n_splits) for e in result.estimates()
                         if e.setting == setting}, reverse=True)
        parts.append(f"{SETTING_WORDS[setting]}: " + ", ".join(
            f"{k} seed{'s' * (k > 1)} x {n} split{'s' * (n > 1)}" for k, n in shapes))
    text = (f"{what} regenerated by aecnn-kit (profile {result.grid.profile}). Every choice "
            "(candidate, epoch, threshold, temperature) is made on each split's selection half; "
            "the value is the mean over splits of the report-half scores (mean over seeds). "
            + threshold_words(result.metrics if metrics is None else metrics)
            + " Cells: value ± sd (over seeds where an arm "
            "has several, else over splits) [95% interval over slides]; " + "; ".join(parts)
            + " (a single seed: its training noise is not in the comparisons).")
    if family:
        text += (f" Comparisons: paired slide bootstrap, Holm-corrected over a family of "
                 f"{family}.")
    return text


def trained_on_line(pairs: Iterable[tuple[str, str]], what: str = "") -> str:
    """``- Trained on<what> cpu: A, B; cuda: C.`` from (name, device) pairs, devices in order of
    appearance, each name once."""
    devices: dict[str, list[str]] = {}
    for name, device in pairs:
        names = devices.setdefault(device, [])
        if name not in names:
            names.append(name)
    return (f"- Trained on{what} "
            + "; ".join(f"{device}: {', '.join(names)}" for device, names in devices.items())
            + ".")
