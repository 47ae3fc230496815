"""Choosing the epoch and threshold on a selection half, scoring the report half: once, or over
many splits of the same cells at the cost of one training.

A run keeps its model's outputs (logits) on every validation and test cell after every epoch
(the *pool*, :class:`aecnn_utils.training.prepare.PreparedData`). Everything after training is a
function of those stored outputs:

1. the epoch: the trainer's early stopping replayed on the selection half's monitor values
   (:func:`select_epoch`);
2. the threshold: the largest one that keeps the selection half's sensitivity at or above
   ``target_sensitivity``;
3. the report half's metrics at 0.5 and at that threshold, with 95% intervals from a *group*
   bootstrap over ``patient_or_slide`` (cells of one slide are not independent; over repeated
   splits, the interval of the mean over splits, all splits rescored on each draw), and the same
   metrics without the cells of classes no training cell resembles (``test_seen``: Herlev's
   columnar cells for a model trained on SIPaKMeD, :func:`~aecnn_utils.data.taxonomy.
   unseen_classes`);
4. calibration: a temperature fitted on the selection half's logits and the report half's
   expected calibration error, NLL and Brier score before and after it
   (:mod:`aecnn_utils.evaluation.calibration`).

With ``n_splits`` > 1 this is repeated for split seeds ``split_seed, split_seed + 1, ...``; a
separate run trained with ``split_seed = s`` gives exactly the numbers of split ``s`` (tested).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from aecnn_utils.data.splits import grouped_split
from aecnn_utils.data.taxonomy import unseen_classes
from aecnn_utils.evaluation import metrics as M
from aecnn_utils.evaluation.calibration import calibration_scores
from aecnn_utils.training.config import MONITORS, RunConfig

#: The group the intervals resample (the unit the splits keep whole).
CI_UNIT = "patient_or_slide"
#: Scalar metrics kept per split and summarised over splits.
SPLIT_METRICS: tuple[str, ...] = (
    *M.TABLE_METRICS, "balanced_accuracy", "sensitivity", "npv", "prevalence",
    "sens_at_spec90", "sens_at_spec95", "spec_at_sens90", "spec_at_sens95")

#: Calibration scores kept per split
#: (:func:`aecnn_utils.evaluation.calibration.calibration_scores`).
CALIBRATION_SCORES: tuple[str, ...] = ("temperature", "ece", "ece_calibrated", "nll",
                                       "nll_calibrated", "brier", "brier_calibrated")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of ``logits`` (``N x C``), computed as the trainer does."""
    return torch.softmax(torch.from_numpy(np.ascontiguousarray(logits)).float(), dim=1).numpy()


def val_metrics(logits: np.ndarray, labels: np.ndarray, loss_fn: nn.Module) -> dict[str, float]:
    """The monitor values of one epoch on a selection set: ``val_loss`` (the training loss on
    these cells), ``val_auc``, ``val_balanced_accuracy``, ``val_f1``, ... at 0.5."""
    # on the loss's own device: its class weights are buffers that follow the model (GPU too)
    device = next(iter(loss_fn.buffers()), torch.empty(0)).device
    with torch.no_grad():
        loss = float(loss_fn(torch.from_numpy(logits).float().to(device),
                             torch.from_numpy(labels).long().to(device)))
    m = M.classification_metrics(labels, softmax(logits))
    keys = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "sensitivity", "specificity")
    return {"val_loss": loss, **{f"val_{'auc' if k == 'roc_auc' else k}": float(m[k])
                                 for k in keys}}


def select_epoch(values: Sequence[float], mode: str, patience: int) -> int:
    """The epoch (1-based) early stopping keeps on a recorded monitor curve: the first epoch
    with a strictly better value than all before it, where training stops once ``patience``
    epochs in a row have not improved (the trainer's rule, replayed)."""
    best, best_epoch, bad = float("nan"), 0, 0
    for epoch, value in enumerate(values, start=1):
        if bad >= patience:
            break
        if best_epoch == 0 or (value < best if mode == "min" else value > best):
            best, best_epoch, bad = value, epoch, 0
        else:
            bad += 1
    return best_epoch


#: Split halves already drawn, by cells, datasets, fraction and seed (a draw takes about a
#: second; every run of a grid, and every scoring of it, halves the same cells the same way).
_HALVES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_HALVES_KEPT = 512


def cells_key(frame: pd.DataFrame) -> str:
    """A hash of a cell table's rows in their order (dataset, slide, label, file)."""
    rows = pd.util.hash_pandas_object(frame[["dataset", CI_UNIT, "label", "path"]], index=False)
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()


def split_halves(config: RunConfig, pool: pd.DataFrame, split_seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``pool`` in the selection and report halves of split ``split_seed``, drawn
    exactly as :func:`aecnn_utils.training.prepare.make_splits` draws them for that seed (kept once
    drawn: the same cells, datasets, fraction and seed give the same halves)."""
    key = (cells_key(pool), config.val, config.val_fraction, split_seed)
    if key not in _HALVES:
        cells = pd.concat([pool[pool["dataset"] == name].assign(_row=np.flatnonzero(
            pool["dataset"].to_numpy() == name)) for name in config.val], ignore_index=True)
        report, selection = grouped_split(cells, config.val_fraction, split_seed)
        if len(_HALVES) >= _HALVES_KEPT:
            _HALVES.pop(next(iter(_HALVES)))
        _HALVES[key] = (selection["_row"].to_numpy(), report["_row"].to_numpy())
    selection_rows, report_rows = _HALVES[key]
    return selection_rows.copy(), report_rows.copy()


def seen_mask(config: RunConfig, frame: pd.DataFrame) -> np.ndarray:
    """True for the cells of ``frame`` whose class has a counterpart in the training data."""
    unseen = {(d, c) for d in set(frame["dataset"]) for c in unseen_classes(d, config.train)}
    keys = zip(frame["dataset"], frame["source_class"], strict=True)
    return np.array([k not in unseen for k in keys], dtype=bool)


def score_split(config: RunConfig, class_names: Sequence[str], pool: pd.DataFrame,
                outputs: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
                loss_fn: nn.Module, best_epoch: int | None = None,
                intervals: bool = True) -> dict[str, Any]:
    """Epoch, threshold and metrics of one split from the stored ``outputs`` (``epochs x N x
    C`` logits on ``pool``). ``best_epoch`` skips the epoch choice (the trainer made it);
    ``intervals=False`` skips the bootstrap."""
    labels = pool["label"].to_numpy()
    yv, yt = labels[val_idx], labels[test_idx]
    seen = seen_mask(config, pool.iloc[test_idx])
    partial = seen.any() and not seen.all()
    curve = [val_metrics(o[val_idx], yv, loss_fn)[config.monitor] for o in outputs]
    if best_epoch is None:
        best_epoch = select_epoch(curve, MONITORS[config.monitor], config.patience)
    probs = softmax(outputs[best_epoch - 1])
    pv, pt = probs[val_idx], probs[test_idx]
    groups = pool[CI_UNIT].to_numpy()[test_idx]

    names = interval_names(class_names)

    def ci(threshold: float | None = None) -> dict[str, Any]:
        return M.bootstrap_ci(yt, pt, names, n_boot=config.n_boot, seed=config.seed,
                              threshold=threshold, groups=groups) if intervals else {}

    out: dict[str, Any] = {
        "best_epoch": best_epoch, "selection_value": curve[best_epoch - 1],
        "val": M.classification_metrics(yv, pv, class_names=class_names),
        "test": M.classification_metrics(yt, pt, class_names=class_names),
        "test_ci": ci(), "ci_unit": CI_UNIT}
    if partial:
        out["test_seen"] = M.classification_metrics(yt[seen], pt[seen], class_names=class_names)
    if len(class_names) == 2 and len(set(yv.tolist())) == 2:
        t = M.threshold_for_sensitivity(yv, pv[:, 1], config.target_sensitivity)
        out["threshold"] = {
            "rule": f"largest threshold with validation sensitivity >= "
                    f"{config.target_sensitivity}",
            "value": t,
            "val": M.classification_metrics(yv, pv, threshold=t),
            "test": M.classification_metrics(yt, pt, threshold=t),
            "test_ci": ci(t)}
        if partial:
            out["threshold"]["test_seen"] = M.classification_metrics(yt[seen], pt[seen],
                                                                     threshold=t)
    if len(set(yv.tolist())) > 1:  # a temperature needs both classes among the selection cells
        logits = outputs[best_epoch - 1]
        out["calibration"] = calibration_scores(logits[val_idx], yv, logits[test_idx], yt,
                                                out.get("threshold", {}).get("value"))
    return out


def interval_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """The metrics that get a bootstrap interval (screening ones for binary runs)."""
    names = (*M.TABLE_METRICS, "balanced_accuracy")
    if len(class_names) == 2:
        names += ("sens_at_spec90", "sens_at_spec95", "spec_at_sens90", "spec_at_sens95")
    return names


def _scalars(m: dict[str, Any]) -> dict[str, float]:
    return {k: m[k] for k in SPLIT_METRICS if k in m}


def repeated_splits(config: RunConfig, class_names: Sequence[str], pool: pd.DataFrame,
                    outputs: np.ndarray, loss_fn: nn.Module) -> dict[str, Any]:
    """:func:`score_split` for split seeds ``split_seed .. split_seed + n_splits - 1``: each
    split's epoch, threshold and scalar metrics (the grid, :mod:`aecnn_utils.experiments.grid`,
    scores and summarises them with intervals)."""
    per_split = []
    for seed in range(config.split_seed, config.split_seed + config.n_splits):
        val_idx, test_idx = split_halves(config, pool, seed)
        s = score_split(config, class_names, pool, outputs, val_idx, test_idx, loss_fn,
                        intervals=False)
        row: dict[str, Any] = {"split_seed": seed, "best_epoch": s["best_epoch"],
                               "selection_value": s["selection_value"],
                               "test": _scalars(s["test"])}
        if "test_seen" in s:
            row["test_seen"] = _scalars(s["test_seen"])
        if "threshold" in s:
            row["threshold"] = s["threshold"]["value"]
            row["test_at_threshold"] = _scalars(s["threshold"]["test"])
            if "test_seen" in s["threshold"]:
                row["test_seen_at_threshold"] = _scalars(s["threshold"]["test_seen"])
        if "calibration" in s:
            row["calibration"] = {k: s["calibration"][k] for k in CALIBRATION_SCORES}
        per_split.append(row)
    return {"n_splits": config.n_splits, "per_split": per_split}


def evaluate_outputs(config: RunConfig, class_names: Sequence[str], pool: pd.DataFrame,
                     outputs: np.ndarray, index: dict[str, np.ndarray], loss_fn: nn.Module,
                     best_epoch: int | None = None) -> dict[str, Any]:
    """Everything a run reports from its stored outputs: the configured split (epoch
    ``best_epoch`` if the trainer chose it) and, with ``n_splits`` > 1, every split."""
    final = score_split(config, class_names, pool, outputs, index["val"], index["test"],
                        loss_fn, best_epoch)
    if config.n_splits > 1:
        final["splits"] = repeated_splits(config, class_names, pool, outputs, loss_fn)
    return final
