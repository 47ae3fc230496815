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

The scorings, records and intervals are :mod:`aecnn_utils.experiments.scores`; the paired
comparisons :mod:`aecnn_utils.experiments.paired`; the shared formatters
:mod:`aecnn_utils.experiments.wording`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from aecnn_utils.core.errors import TrainingDiverged, warn
from aecnn_utils.experiments.morphology import fit_reference
from aecnn_utils.experiments.scores import (
    SCREENING,
    GridResult,
    GridRuns,
    Metric,
    run_scorings,
    score_arm,
)
from aecnn_utils.experiments.wording import (
    SETTING_WORDS,
    cell,
    metric_label,
    new_slides_cell,
    threshold_words,
)
from aecnn_utils.models import model_defaults
from aecnn_utils.training.config import MONITORS, RunConfig, profile_config
from aecnn_utils.training.engine import train_config
from aecnn_utils.training.prepare import PreparedData, prepare_data, shared_data
from aecnn_utils.training.runs import RunResult
from aecnn_utils.training.workers import Executor, dispatch

#: In-domain: one SIPaKMeD split, grouped by cluster image, 60/20/20.
IN_DOMAIN: dict[str, Any] = {"protocol": "within", "train": ("sipakmed",), "val_fraction": 0.2,
                             "test_fraction": 0.2, "n_splits": 1}
#: Setting name -> config changes.
SETTINGS: dict[str, dict[str, Any]] = {"cross": {}, "in_domain": IN_DOMAIN}
#: Training seeds across datasets, by profile (others: the profile's own seeds). One seed's
#: training noise is as large as the effects tested, so every compared arm has three.
CROSS_SEEDS: dict[str, tuple[int, ...]] = {"smoke": (0,), "cpu": (0, 1, 2)}
#: Fields that hold a mapping: an arm's change is merged into the base's, not put in its place.
NESTED_FIELDS: tuple[str, ...] = ("augment", "model_kwargs")


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


def run_grid(grid: Grid, runs_dir: str | Path | None = None, *, progress: bool = True,
             epoch_bars: bool = False, executor: Executor | Mapping[str, Any] | str | None = None,
             **overrides: Any) -> GridRuns:
    """Train (or reuse) every run of the grid. ``overrides`` go to every config (e.g.
    ``data_root``, ``epochs``); ``progress`` shows one bar over the grid's configs,
    ``epoch_bars`` also each run's epochs; ``executor`` trains the runs on several workers
    first (:mod:`aecnn_utils.training.workers`). A candidate whose training diverges (loss NaN
    or infinite) is warned about and holds no runs: it is never chosen."""
    jobs = [(setting, arm, candidate) for setting in grid.settings for arm in grid.arms
            for candidate in arm.options()]
    shared: dict[str, PreparedData] = {}  # the cells, prepared once per data key
    dispatch([grid.config(arm, candidate, setting, **overrides)
              for setting, arm, candidate in jobs if not arm.reference], runs_dir, executor,
             shared)
    out: GridRuns = {}
    for setting, arm, candidate in tqdm(jobs, desc="grid", disable=not progress):
        config = grid.config(arm, candidate, setting, **overrides)
        if arm.reference:
            out[setting, arm.name, candidate] = [fit_reference(config, runs_dir,
                                                               progress=epoch_bars)]
            continue
        try:
            out[setting, arm.name, candidate] = train_config(
                config, runs_dir, progress=epoch_bars, data=shared_data(config, shared))
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


def score_grid(grid: Grid, runs: GridRuns, data: Mapping[str, PreparedData],
               metrics: Sequence[Metric] = SCREENING, *, n_boot: int | None = None,
               seed: int = 0) -> GridResult:
    """Score every arm of ``grid`` from its runs (:func:`run_grid`) on the cells of ``data``
    (:func:`grid_data`): nested choices, intervals, new-slides ranges (module docstring).
    Every arm of a setting is rescored on the same slide draws (``seed``; ``n_boot`` of them,
    default the runs' config's), so any two can be compared
    (:func:`aecnn_utils.experiments.paired.compare`)."""
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
