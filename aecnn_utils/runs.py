"""Run folders and their results: what a finished run left, read back and tabulated.

A run folder ``runs/<profile>/<run-id>/`` (written by :func:`aecnn_utils.train.train_run`) holds:

``config.yaml``  the configuration            ``norm.json``     training-set normalisation
``splits.csv``   cells per split and label    ``history.csv``   one row per epoch
``best.pt``      best model (by the monitor)  ``last.pt``       full state after the last epoch
``metrics.json`` validation and test metrics at 0.5 and at the validation-chosen threshold,
                 with bootstrap confidence intervals on the test cells
``predictions_val.csv``, ``predictions_test.csv``  per-cell probabilities
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import metrics as M
from .config import ConfigError, RunConfig
from .data.loaders import CellDataset, make_loader
from .data.prepare import PreparedData
from .data.sources import project_dir
from .data.transforms import NormStats, build_eval_transform
from .device import resolve_device

IF_EXISTS: tuple[str, ...] = ("resume", "overwrite", "error")


def default_runs_dir() -> Path:
    """``runs/`` of the checkout."""
    return project_dir() / "runs"


@dataclass
class RunResult:
    """What a finished run left in its folder."""

    run_dir: Path
    config: RunConfig
    history: pd.DataFrame
    metrics: dict[str, Any]
    resumed_from_epoch: int = 0
    reused: bool = False

    @property
    def best_checkpoint(self) -> Path:
        """Path of ``best.pt``."""
        return self.run_dir / "best.pt"


def load_run(run_dir: str | Path) -> RunResult:
    """Read a finished run folder."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no finished run (no metrics.json)")
    return RunResult(run_dir, RunConfig.load(run_dir / "config.yaml"),
                     pd.read_csv(run_dir / "history.csv"),
                     json.loads(metrics_path.read_text(encoding="utf-8")), reused=True)


def open_run_dir(config: RunConfig, data: PreparedData, runs_dir: str | Path | None,
                 if_exists: str) -> tuple[Path, RunResult | None]:
    """The run's folder, and its result if it already finished and may be reused.

    ``if_exists``: a finished run is reused (``resume``), replaced (``overwrite``) or refused
    (``error``); an unfinished one is resumed unless ``overwrite``.
    """
    if if_exists not in IF_EXISTS:
        raise ConfigError(f"if_exists={if_exists!r} is not valid; choose one of: "
                          f"{', '.join(IF_EXISTS)}")
    run_dir = (Path(runs_dir or default_runs_dir()) / config.profile
               / config.run_id(data.fingerprint))
    if run_dir.exists() and if_exists == "overwrite":
        shutil.rmtree(run_dir)
    if (run_dir / "metrics.json").is_file():
        if if_exists == "error":
            raise FileExistsError(f"run {run_dir} already finished; pass if_exists='overwrite' "
                                  "to train it again")
        return run_dir, load_run(run_dir)
    if (run_dir / "config.yaml").is_file():
        saved = RunConfig.load(run_dir / "config.yaml")
        if saved.fingerprint() != config.fingerprint():
            raise ConfigError(f"{run_dir} holds a different config; remove it or pass "
                              "if_exists='overwrite'")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    data.norm.save(run_dir / "norm.json")
    data.splits.table().to_csv(run_dir / "splits.csv", index=False)
    return run_dir, None


# ----------------------------------------------------------------------------- inference
def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when ``amp``; nothing elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device,
            loss_fn: nn.Module | None = None, amp: bool = False,
            channels_last: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Class probabilities, labels and mean loss of ``model`` over ``loader``."""
    model.eval()
    probs, labels, total, n = [], [], 0.0, 0
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        if loss_fn is not None:
            total += float(loss_fn(logits, y)) * len(y)
            n += len(y)
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    return (np.concatenate(probs), np.concatenate(labels),
            total / n if n else float("nan"))


def evaluate_checkpoint(run: RunResult, data: PreparedData, part: str,
                        device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities of a run's best model on one split of ``data``
    (``train``, ``val`` or ``test``), with the run's own normalisation and image size."""
    from .models import load_trained_model

    if part not in data.caches:
        raise ValueError(f"unknown split {part!r}; choose one of {', '.join(data.caches)}")
    dev = resolve_device(device)
    model, meta = load_trained_model(run.best_checkpoint, map_location=dev)
    model.to(dev)
    transform = build_eval_transform(int(meta["image_size"]), NormStats.from_dict(meta["norm"]))
    loader = make_loader(CellDataset(data.caches[part], transform), 128, shuffle=False,
                         device=dev)
    probs, labels, _ = predict(model, loader, dev)
    return labels, probs


# ----------------------------------------------------------------------------- results
def predictions_frame(df: pd.DataFrame, probs: np.ndarray, class_names: Sequence[str],
                      threshold: float | None) -> pd.DataFrame:
    """Per-cell predictions as written to ``predictions_<part>.csv``."""
    out = df[["path", "dataset", "source_class", "label", "label_name",
              "patient_or_slide"]].copy()
    out["path"] = out["path"].map(lambda p: Path(p).name)
    for k, name in enumerate(class_names):
        out[f"prob_{name}"] = probs[:, k]
    out["pred"] = probs.argmax(axis=1)
    if threshold is not None:
        out["pred_val_threshold"] = (probs[:, 1] >= threshold).astype(int)
    return out


def final_metrics(config: RunConfig, class_names: Sequence[str],
                  results: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Validation and test metrics at 0.5, test bootstrap intervals, and (binary) the metrics
    at the threshold chosen on the validation set for ``config.target_sensitivity``."""
    yv, pv = results["val"]
    yt, pt = results["test"]
    out: dict[str, Any] = {"val": M.classification_metrics(yv, pv, class_names=class_names),
                           "test": M.classification_metrics(yt, pt, class_names=class_names)}
    out["test_ci"] = M.bootstrap_ci(yt, pt, n_boot=config.n_boot, seed=config.seed)
    if len(class_names) == 2 and len(set(yv.tolist())) == 2:
        t = M.threshold_for_sensitivity(yv, pv[:, 1], config.target_sensitivity)
        out["threshold"] = {
            "rule": f"largest threshold with validation sensitivity >= "
                    f"{config.target_sensitivity}",
            "value": t,
            "val": M.classification_metrics(yv, pv, threshold=t),
            "test": M.classification_metrics(yt, pt, threshold=t),
            "test_ci": M.bootstrap_ci(yt, pt, n_boot=config.n_boot, seed=config.seed,
                                      threshold=t),
        }
    return out


RESULT_METRICS: tuple[str, ...] = (*M.TABLE_METRICS, "balanced_accuracy")


def results_table(results: dict[str, Sequence[RunResult]], split: str = "test",
                  threshold: str = "0.5") -> pd.DataFrame:
    """One row per model: mean and std over seeds of the ``split`` metrics, the 95% bootstrap
    interval of the first seed, and the data and seeds they come from.

    Args:
        threshold: ``"0.5"`` for the default decision rule, ``"val"`` for the threshold chosen
            on the validation set (binary runs only).
    """
    rows = []
    for model, runs in results.items():
        if not runs:
            continue
        per_seed, cis = [], []
        for r in runs:
            if threshold == "val":
                block = r.metrics.get("threshold")
                if block is None:
                    raise ValueError(f"{r.run_dir} has no validation threshold (multi-class or "
                                     "single-class validation set)")
                per_seed.append(block[split])
                cis.append(block.get(f"{split}_ci", {}))
            else:
                per_seed.append(r.metrics[split])
                cis.append(r.metrics.get(f"{split}_ci", {}) if split == "test" else {})
        # metrics.json stores undefined values (NaN) as null
        per_seed = [{k: float("nan") if v is None else v for k, v in m.items()}
                    for m in per_seed]
        summary = M.summarize_seeds(per_seed, RESULT_METRICS)
        row: dict[str, Any] = {
            "model": model, "seeds": len(runs), "data": runs[0].metrics["data"],
            "profile": runs[0].metrics["profile"], "params": runs[0].metrics["params"],
            "train_seconds": float(np.mean([r.metrics["train_seconds"] for r in runs])),
            "best_epoch": float(np.mean([r.metrics["best_epoch"] for r in runs])),
            "device": runs[0].metrics["device"]}
        for name in RESULT_METRICS:
            row[name] = summary[name]["mean"]
            row[f"{name}_std"] = summary[name]["std"]
            ci = cis[0].get(name) or {}
            for bound in ("low", "high"):  # null in metrics.json where undefined
                value = ci.get(bound)
                row[f"{name}_{bound}"] = float("nan") if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows)
