"""The model grid: the same learning-rate grid for every model, chosen per split, and Table 2.

``python -m aecnn_utils tune --profile cpu`` trains each model at every learning rate of the
profile's grid (:data:`TUNE_LRS`) with the grid's seeds (:mod:`aecnn_utils.experiments.grid`). For
each split the rate with the best selection-half monitor (mean over seeds) is chosen and the report
half is scored at it: Table 2's figures are these nested estimates, which include the luck of
the choice. What most splits chose is written to
``aecnn_utils/training/profiles/<profile>_tuned.yaml``, with the counts: a record that ``train``
(and ``profile_config``) reads as its default, never a figure the kit reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aecnn_utils.evaluation import metrics as M
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import scores as S
from aecnn_utils.models import MODELS, PRETRAINED, model_label
from aecnn_utils.training.config import ConfigError
from aecnn_utils.training.tuned import update_tuned
from aecnn_utils.training.workers import Executor

#: Learning-rate grid of each profile (log-spaced, 16x range).
TUNE_LRS: dict[str, tuple[float, ...]] = {"smoke": (0.01, 0.05), "cpu": (0.005, 0.02, 0.08),
                                          "paper": (3e-4, 1e-3, 3e-3)}
#: Table 2's metrics: the paper's at 0.5 and at the selection-chosen threshold, and the
#: screening ones.
TABLE2_METRICS: tuple[S.Metric, ...] = (
    *(S.Metric(m) for m in M.TABLE_METRICS),
    *(S.Metric(m, at_threshold=True) for m in M.TABLE_METRICS if m != "roc_auc"),
    S.Metric("balanced_accuracy"), S.Metric("sens_at_spec95"))
#: The arm the others are compared with in Table 2.
OURS = "aecnn"


#: Further arms of a model in Table 2, each with the same learning-rate candidates: AECNN's
#: other layer table (the default is ``fast``, :data:`aecnn_utils.models.aecnn.LAYER_TABLES`),
#: compared with it by the paired test.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "aecnn": {"aecnn_base": {"model_kwargs": {"layers": "base"}}}}
#: Display names of the variant arms.
VARIANT_LABELS: dict[str, str] = {"aecnn_base": "AECNN, base layer table"}


def arm_label(name: str) -> str:
    """Display name of a Table 2 arm: a model's, or a variant's (:data:`VARIANT_LABELS`)."""
    return VARIANT_LABELS.get(name) or model_label(name)


def model_grid(profile: str, models: Sequence[str], lrs: Sequence[float] | None = None,
               seeds: Sequence[int] | None = None,
               pretrained: Mapping[str, Path] | None = None) -> G.Grid:
    """One arm per model and per :data:`VARIANTS` of it; their candidates the learning rates
    (default the profile's grid, ``"lr 0.005"``). ``pretrained`` (model -> local ImageNet
    weights, :func:`aecnn_utils.models.pretrained_weights`) adds an arm ``<model>+imagenet``
    started from those weights."""
    lrs = tuple(lrs or TUNE_LRS.get(profile, ()))
    if len(lrs) < 2:
        raise ConfigError(f"tuning needs a grid of at least 2 learning rates, got {lrs}")
    jobs = [job for m in models for job in [(m, {"model": m})] + [
        (name, {"model": m, **extra}) for name, extra in VARIANTS.get(m, {}).items()]]
    jobs += [(m + PRETRAINED, {"model": m, "model_kwargs": {"weights_path": str(path)}})
             for m, path in (pretrained or {}).items()]
    candidates = {f"lr {lr:g}": {"lr": float(lr)} for lr in lrs}
    arms = tuple(G.Arm(name, change, candidates, group="model") for name, change in jobs)
    return G.Grid(profile, arms, ("cross",), {}, tuple(seeds) if seeds else None)


def tune(profile: str, models: Sequence[str], lrs: Sequence[float] | None = None,
         runs_dir: str | Path | None = None, progress: bool = True, write: bool = True,
         seeds: Sequence[int] | None = None, n_boot: int | None = None,
         executor: Executor | Mapping[str, Any] | str | None = None,
         **overrides: Any) -> S.GridResult:
    """Train (or reuse) the model grid (on ``executor``'s workers,
    :mod:`aecnn_utils.training.workers`), score it with nested choices (Table 2's metrics) and,
    with ``write``, record what most splits chose in ``<profile>_tuned.yaml``. A rate whose
    runs diverge is warned about and never chosen."""
    grid = model_grid(profile, models, lrs, seeds)
    runs = G.run_grid(grid, runs_dir, progress=progress, executor=executor, **overrides)
    data = G.grid_data(grid, **overrides)
    result = G.score_grid(grid, runs, data, TABLE2_METRICS, n_boot=n_boot)
    if write:
        record(profile, result)
    return result


def record(profile: str, result: S.GridResult) -> Path:
    """Merge the learning rate most splits chose per model (its variants are not recorded:
    ``train`` builds the model's default) into ``<profile>_tuned.yaml``, with each rate's count
    of splits and the nested AUC of the whole procedure."""
    entries = {}
    for arm in result.grid.arms:
        if arm.name not in MODELS:
            continue
        e = result.estimate(arm.name, "roc_auc")
        entries[arm.name] = {
            "lr": arm.candidates[e.chosen[0][0]]["lr"], "splits_chose": dict(e.chosen),
            "nested_auc": round(e.value, 6), "data": result.data["cross"],
            "why": "the learning rate most splits chose on their selection halves (the "
                   "monitor, mean over seeds); a record for `train`, never a reported figure"}
    return update_tuned(profile, entries)
