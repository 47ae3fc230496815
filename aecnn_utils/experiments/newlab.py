"""A new lab's cells: how many labelled cells of its own it takes (the label-efficiency curve).

The target (Herlev, the profile's validation dataset) is halved by slide as the cross-dataset
runs halve it, for the first :data:`CURVE_SPLITS` split seeds: one half is the lab's pool of
cells to label, the other its report half. ``k`` pool cells are labelled, whole slides and
stratified (:func:`aecnn_utils.data.splits.draw_cells`), for each ``k`` of :data:`CURVE_CELLS`
(``0``: none, the whole pool: :data:`POOL`); a quarter of their slides (``select_fraction``)
choose each run's epoch and threshold, the rest train it (the ``adapt`` protocol of
:mod:`aecnn_utils.training.config`). The methods (:data:`METHODS`) get the same budget: the same
epochs, and the epoch and threshold chosen on the same labelled cells:

* fine-tuning the SIPaKMeD run of the same seed: every weight, the head and BatchNorm, or the
  head alone (:mod:`aecnn_utils.training.finetune`);
* AECNN trained from scratch on the ``k`` cells;
* joint training, from scratch, on SIPaKMeD plus the ``k`` cells (the profile's epochs);
* the nucleus-feature reference (:mod:`aecnn_utils.experiments.morphology`) fitted on the ``k``
cells.

At ``k = 0`` the SIPaKMeD run is scored as a lab without labels has it: its final epoch, on
the same report halves (the fine-tunes start from those weights, so that no epoch of theirs was
chosen on target labels either). Every run is scored on its split's report half, and the runs
of one (method, k) are an arm of the experiment grid
(:func:`aecnn_utils.experiments.scores.score_arm`): the estimates, slide-level intervals,
new-slides ranges and paired comparisons are the grid's, on the same cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.morphology import fit_reference
from aecnn_utils.training.config import MONITORS, RunConfig, profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import PreparedData, prepare_data, shared_data
from aecnn_utils.training.runs import RunResult
from aecnn_utils.training.scoring import softmax, split_halves
from aecnn_utils.training.workers import Executor, dispatch

#: ``train_cells`` of the whole adaptation pool.
POOL = 0
#: Labelled cells per point of the curve, by profile (``None``: the whole pool).
CURVE_CELLS: dict[str, tuple[int | None, ...]] = {
    "smoke": (0, 12, None), "cpu": (0, 16, 32, 64, 128, None),
    "paper": (0, 16, 32, 64, 128, None)}
#: Splits (pool / report halves) the curve is repeated over, by profile.
CURVE_SPLITS: dict[str, int] = {"smoke": 2, "cpu": 3, "paper": 10}
#: Epochs of the runs trained on the labelled cells alone (joint training keeps the
#: profile's: SIPaKMeD's steps dominate it).
CURVE_EPOCHS: dict[str, int] = {"smoke": 2, "cpu": 60, "paper": 100}
#: The method that starts from nothing of SIPaKMeD: the comparisons' second arm.
SCRATCH = "scratch"
#: The ``k = 0`` point: the SIPaKMeD run as it is.
ZERO = "SIPaKMeD run"
#: The nucleus-feature reference.
REFERENCE = "nucleus features"
#: Method -> its config change on top of the ``adapt`` base (``init_from`` is added per seed).
METHODS: dict[str, dict[str, Any]] = {
    "fine-tune: all": {"finetune": "all"},
    "fine-tune: head+bn": {"finetune": "head+bn"},
    "fine-tune: head": {"finetune": "head"},
    SCRATCH: {},
    "joint": {"joint": True},
    REFERENCE: {},
}
#: The fine-tuning methods.
FINETUNE = tuple(m for m, c in METHODS.items() if "finetune" in c)
#: The curve's metrics.
CURVE_METRICS: tuple[S.Metric, ...] = S.SCREENING
#: AUC levels the words look for (the smallest k whose estimate reaches each).
AUC_LEVELS: tuple[float, ...] = (0.90, 0.95)


def arm_name(method: str, k: int | None) -> str:
    """``"scratch, k=32"``; ``k=0`` is the SIPaKMeD run as it is; ``k=all``: the pool."""
    return f"{method}, k={k_label(k)}"


@dataclass(frozen=True)
class Curve:
    """What the curve trains: its methods, cells, splits and seeds under a profile."""

    profile: str
    methods: tuple[str, ...] = tuple(METHODS)
    cells: tuple[int | None, ...] = ()
    n_splits: int = 0
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; choose from: {', '.join(METHODS)}")
        object.__setattr__(self, "cells", tuple(self.cells or CURVE_CELLS.get(
            self.profile, CURVE_CELLS["cpu"])))
        object.__setattr__(self, "n_splits", self.n_splits or CURVE_SPLITS.get(self.profile, 3))
        object.__setattr__(self, "seeds", tuple(self.seeds or G.CROSS_SEEDS.get(
            self.profile, (0, 1, 2))))

    def source(self, seed: int, **overrides: Any) -> RunConfig:
        """The SIPaKMeD run of ``seed``: the profile's plain config, its validation dataset
        (the target) halved into selection and report halves on at least :attr:`n_splits`
        splits (the ``cpu`` profile's own runs)."""
        base = profile_config(self.profile, recipe=False, tuned=False, **overrides)
        return base.replace(test=base.val, seeds=(seed,), seed=seed,
                            n_splits=max(base.n_splits, self.n_splits))

    def config(self, method: str, k: int | None, split: int, seed: int, source_dir: Path,
               **overrides: Any) -> RunConfig:
        """The run of ``method`` on ``k`` labelled cells of split ``split``'s pool."""
        base = self.source(seed, **overrides)
        target = base.test[0]
        change = dict(METHODS[method])
        joint = change.pop("joint", False)
        values: dict[str, Any] = {
            "protocol": "adapt", "test": (target,), "val": (target,),
            "train": (*base.train, target) if joint else (target,), "split_seed": split,
            "train_cells": POOL if k is None else k, "n_splits": 1, **change}
        epochs = base.epochs if joint else CURVE_EPOCHS.get(self.profile, base.epochs)
        # every epoch runs (few labelled cells: early stopping would end a run before it
        # learns); the epoch is then chosen on the selection cells
        values.update(epochs=epochs, patience=epochs)
        if "finetune" in change:  # the final epoch: no epoch of it chosen on target labels
            values["init_from"] = str(source_dir / "last.pt")
        return base.replace(**values)


#: (method, k) -> seed -> split -> the run.
CurveRuns = dict[tuple[str, int | None], list[list[RunResult]]]


def run_curve(curve: Curve, runs_dir: str | Path | None = None, *, progress: bool = True,
              executor: Executor | Mapping[str, Any] | str | None = None,
              **overrides: Any) -> tuple[CurveRuns, dict[int, RunResult]]:
    """Train (or reuse) every run of the curve, and the SIPaKMeD runs it starts from (one per
    seed, returned too: they are the curve's ``k = 0``); ``executor`` trains them on several
    workers first, the sources before the runs that start from them
    (:mod:`aecnn_utils.training.workers`)."""
    dispatch([curve.source(s, **overrides) for s in curve.seeds], runs_dir, executor)
    sources = {s: train_run(curve.source(s, **overrides), runs_dir, progress=False)
               for s in curve.seeds}
    jobs = [(m, k, seed, split) for m in curve.methods for k in curve.cells if k != 0
            for seed in curve.seeds for split in range(curve.n_splits)]
    shared: dict[str, PreparedData] = {}  # the cells, prepared once per data key
    dispatch([curve.config(m, k, split, seed, sources[seed].run_dir, **overrides)
              for m, k, seed, split in jobs if m != REFERENCE], runs_dir, executor, shared)
    runs: CurveRuns = {}
    for method, k, seed, split in tqdm(jobs, desc="label-efficiency curve",
                                       disable=not progress):
        config = curve.config(method, k, split, seed, sources[seed].run_dir, **overrides)
        run = (fit_reference(config, runs_dir, progress=False) if method == REFERENCE
               else train_run(config, runs_dir, progress=False,
                              data=shared_data(config, shared)))
        per_seed = runs.setdefault((method, k), [[] for _ in curve.seeds])
        per_seed[curve.seeds.index(seed)].append(run)
    return runs, sources


def _scoring(run: RunResult, rows: Mapping[str, int], n: int, n_classes: int) -> S.Scoring:
    """One run of the curve as a scoring on the target's cells (``rows``: file name -> row):
    its probabilities at its own epoch, its selection and report cells, its threshold."""
    probs = np.full((n, n_classes), np.nan)
    found = {}
    for part in ("val", "test"):
        frame = pd.read_csv(run.run_dir / f"predictions_{part}.csv")
        frame = frame[frame["dataset"].isin({run.config.test[0]})]
        index = frame["path"].map(lambda p: rows[Path(p).name]).to_numpy()
        probs[index] = frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy()
        found[part] = np.sort(index)
    threshold = run.metrics.get("threshold", {}).get("value")
    return S.Scoring(probs, found["val"], found["test"], threshold,
                     float(run.metrics["selection_value"]))


def _unlabelled(run: RunResult, pool: pd.DataFrame, n_splits: int) -> list[S.Scoring]:
    """A SIPaKMeD run as a lab without labels has it: its final epoch on the first
    ``n_splits`` report halves (no threshold; no epoch chosen)."""
    probs = softmax(run.epoch_logits(-1))
    return [S.Scoring(probs, *split_halves(run.config, pool, j), None, math.nan)
            for j in range(n_splits)]


def score_curve(curve: Curve, runs: CurveRuns, sources: Mapping[int, RunResult],
                data: PreparedData, metrics: Sequence[S.Metric] = CURVE_METRICS, *,
                n_boot: int | None = None, seed: int = 0) -> S.GridResult:
    """Every (method, k) of the curve as an arm of a grid result (setting ``cross``), scored
    on the target cells of ``data`` (the SIPaKMeD runs' data) with the same slide draws."""
    frame = data.frame("pool")
    rows = {Path(p).name: i for i, p in enumerate(frame["path"])}
    n_classes = len(data.class_names)
    first = next(iter(sources.values()))
    mode = MONITORS[first.config.monitor]
    n_boot = n_boot or first.config.n_boot
    per_arm: dict[str, list[list[S.Scoring]]] = {}
    if 0 in curve.cells:  # no labels: the final epoch, scored at 0.5
        per_arm[arm_name(ZERO, 0)] = [_unlabelled(sources[s], frame, curve.n_splits)
                                      for s in curve.seeds]
    for (method, k), per_seed in runs.items():
        per_arm[arm_name(method, k)] = [[_scoring(r, rows, len(frame), n_classes)
                                         for r in seed_runs] for seed_runs in per_seed]
    grid = G.Grid(curve.profile, tuple(G.Arm(name, group="new lab") for name in per_arm),
                  ("cross",), seeds=curve.seeds)
    scores = {("cross", name): S.score_arm("cross", name, {"": table}, frame, metrics, mode,
                                           n_boot=n_boot, seed=seed)
              for name, table in per_arm.items()}
    flat: S.GridRuns = {("cross", arm_name(ZERO, 0), ""): list(sources.values())}
    for (method, k), per_seed in runs.items():
        flat["cross", arm_name(method, k), ""] = [r for rs in per_seed for r in rs]
    return S.GridResult(grid, tuple(metrics), scores, flat, {"cross": data.source.notice})


def label_efficiency(curve: Curve, runs_dir: str | Path | None = None, *,
                     progress: bool = True, n_boot: int | None = None,
                     executor: Executor | Mapping[str, Any] | str | None = None,
                     **overrides: Any) -> S.GridResult:
    """Train (or reuse) the curve's runs (on ``executor``'s workers) and score them
    (:func:`score_curve`)."""
    runs, sources = run_curve(curve, runs_dir, progress=progress, executor=executor,
                              **overrides)
    data = prepare_data(curve.source(curve.seeds[0], **overrides), progress=False)
    return score_curve(curve, runs, sources, data, n_boot=n_boot)


def _method_k(arm: str) -> tuple[str, int | None]:
    method, _, k = arm.rpartition(", k=")
    return method, None if k == "all" else int(k)


def curve_comparisons(result: S.GridResult, metric: str = "roc_auc") -> list[P.Comparison]:
    """Every method against training from scratch at the same ``k``, paired on the same
    report halves, Holm-corrected over the whole curve."""
    arms = [a.name for a in result.grid.arms]
    pairs = [(a, arm_name(SCRATCH, _method_k(a)[1])) for a in arms
             if _method_k(a)[0] != SCRATCH and arm_name(SCRATCH, _method_k(a)[1]) in arms]
    return P.compare(result, pairs, [metric])


def curve_frame(result: S.GridResult, metric: str = "roc_auc") -> pd.DataFrame:
    """The records of ``metric`` with ``method`` and ``k`` (text) columns, the ``k = 0`` point
    repeated for every method (each line of the curve starts from it): what the figure and
    the CSV hold."""
    frame = result.frame()
    frame = frame[frame["metric"] == metric]
    parts = [_method_k(a) for a in frame["arm"]]
    frame = frame.assign(method=[m for m, _ in parts], k=[_ks([k]) for _, k in parts])
    zero, rest = frame[frame["method"] == ZERO], frame[frame["method"] != ZERO]
    starts = [zero.assign(method=m) for m in dict.fromkeys(rest["method"])]
    return pd.concat([*starts, rest], ignore_index=True)


def curve_table(result: S.GridResult, metric: str = "roc_auc") -> pd.DataFrame:
    """One row per method, one column per ``k``: :func:`aecnn_utils.experiments.wording.cell` of
    ``metric`` (``k = 0``: the SIPaKMeD run as it is, in every row)."""
    cells: dict[str, dict[int | None, str]] = {}
    for arm in result.grid.arms:
        method, k = _method_k(arm.name)
        cells.setdefault(method, {})[k] = W.cell(result.estimate(arm.name, metric))
    zero = cells.pop(ZERO, {}).get(0)
    ks = list(dict.fromkeys([0] * (zero is not None) + [k for row in cells.values()
                                                         for k in row]))
    return pd.DataFrame([{"Method": method, **{f"k = {_ks([k])}": zero if k == 0 else
                                               row.get(k, "-") for k in ks}}
                         for method, row in cells.items()])


def curve_words(result: S.GridResult, comparisons: Sequence[P.Comparison],
                levels: Sequence[float] = AUC_LEVELS) -> str:
    """The curve's answer in words: from which ``k`` starting from SIPaKMeD beats training from
    scratch (paired test, Holm), and from which ``k`` a method reaches each AUC level."""
    lines = []
    order = {None: np.inf}
    by_method: dict[str, list[tuple[int | None, P.Comparison]]] = {}
    for c in comparisons:
        method, k = _method_k(c.first)
        by_method.setdefault(method, []).append((k, c))
    for method, items in by_method.items():
        items.sort(key=lambda kc: order.get(kc[0], kc[0]))
        shown = [k for k, c in items if c.verdict == "higher"]
        lower = [k for k, c in items if c.verdict == "lower"]
        held = next((k for i, (k, _) in enumerate(items)
                     if all(c.verdict == "higher" for _, c in items[i:])), "none")
        family = items[0][1].family
        if held != "none":
            start = "all" if held is None else held
            head = f"- {method} beats {SCRATCH} in AUC from k = {start} on"
        else:
            head = f"- {method} does not beat {SCRATCH} in AUC from any k on"
        found = "; ".join(f"shown {what} at k = {_ks(ks)}"
                          for what, ks in (("higher", shown), ("lower", lower)) if ks)
        lines.append(f"{head} (paired test, Holm over {family}: "
                     f"{found or 'no k shown higher or lower'}).")
    estimates = [e for e in result.estimates() if e.metric == "roc_auc"]
    for level in levels:
        for what, value in (("its estimate", lambda e: e.value),
                            ("its interval's lower bound", lambda e: e.low)):
            reached = [(_method_k(e.arm), e) for e in estimates if value(e) >= level]
            if reached:
                (method, k), e = min(reached, key=lambda r: order.get(r[0][1], r[0][1]))
                lines.append(f"- AUC {level:.2f} first reached by {what} at k = "
                             f"{'all' if k is None else k}: {method}, {W.cell(e)}.")
            else:
                best = max(estimates, key=value)
                lines.append(f"- AUC {level:.2f}: not reached by {what} at any k (best: "
                             f"{best.arm}, {W.cell(best)}).")
    return "\n".join(lines)


def k_label(k: int | None) -> str:
    """``"32"``; ``"all"`` for the whole pool."""
    return "all" if k is None else str(k)


def _ks(ks: Sequence[int | None]) -> str:
    return ", ".join(map(k_label, ks))


def time_line(result: S.GridResult) -> str:
    """Training time of the curve's runs as each recorded it: the mean per run of each method
    (over every ``k``, split and seed) and the sum (the SIPaKMeD runs it starts from left out:
    they are the cross-dataset results')."""
    minutes: dict[str, list[float]] = {}
    for (_, arm, _), runs in result.runs.items():
        method, k = _method_k(arm)
        if k != 0:
            minutes.setdefault(method, []).extend(r.metrics.get("train_seconds", np.nan) / 60
                                                  for r in runs)
    total = sum(np.nansum(m) for m in minutes.values())
    n = sum(len(m) for m in minutes.values())
    return ("- Training time per run (wall clock on its device, as each run recorded it; other "
            "work may have shared the machine): " + ", ".join(
                f"{method} {np.nanmean(m):.2f} min" for method, m in minutes.items())
            + f"; the curve's {n} runs {total:.0f} min in all.")
