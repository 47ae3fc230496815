"""The efficiency grid: each benchmark row's AUC across datasets, from the profile's runs, so
that notebook 06 sets speed (:mod:`aecnn_utils.deploy.bench`) against accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aecnn_utils.core.names import profile_models
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S

#: AECNN's two layer tables, the default first: the rows compared paired on AUC.
LAYER_ROWS: tuple[str, str] = ("AECNN (parallel)", "AECNN base (parallel)")

#: Benchmark row -> its arm in the efficiency grid: every model at the profile's learning rate
#: with the grid's seeds (the study's protocol, :mod:`aecnn_utils.experiments.grid`), so the rows
#: share their runs with the study and Table 2 and two rows are compared paired on the same
#: cells.
AUC_ARMS: dict[str, dict[str, Any]] = {
    "AECNN (parallel)": {},
    "AECNN base (parallel)": {"model_kwargs": {"layers": "base"}},
    "MobileNetV3-Small": {"model": "mobilenet_v3_small"},
    "EfficientNet-B3": {"model": "efficientnet_b3"},
    "ResNet-50": {"model": "resnet50"},
}


def efficiency_grid(profile: str, names: Sequence[str] | None = None, *,
                    seed: int = 0) -> G.Grid:
    """The grid of the benchmark rows ``names`` (default every row of :data:`AUC_ARMS` whose
    model is one of the profile's, :func:`aecnn_utils.training.config.profile_models`) across
    datasets; its training seeds count from ``seed``."""
    names = list(names or [n for n, change in AUC_ARMS.items()
                           if change.get("model", "aecnn") in profile_models(profile)])
    seeds = tuple(seed + s for s in G.Grid(profile, ()).cross_seeds())
    return G.Grid(profile, tuple(G.Arm(n, AUC_ARMS[n]) for n in names), ("cross",),
                  seeds=seeds)


def model_aucs(profile: str, runs_dir: str | Path | None = None, *,
               names: Sequence[str] | None = None, seed: int = 0, progress: bool = True,
               **overrides: Any) -> S.GridResult:
    """Cross-dataset AUC of the benchmark rows (:func:`efficiency_grid`), from the profile's
    runs (reused when finished, trained when missing), scored by the grid: nested choices,
    slide-level intervals. ``overrides`` go to every config (``data_root``, ``device``)."""
    grid = efficiency_grid(profile, names, seed=seed)
    runs = G.run_grid(grid, runs_dir, progress=progress, **overrides)
    return G.score_grid(grid, runs, G.grid_data(grid, **overrides), (S.Metric("roc_auc"),))


def layer_comparison(result: S.GridResult) -> P.Comparison | None:
    """AECNN (the default, ``fast`` layer table) against the base table on AUC (paired), when
    both are rows."""
    found = P.compare(result, [LAYER_ROWS])
    return found[0] if found else None
