"""Training and evaluation engine (paper section 4): one run per config, resumable.

:func:`train_run` takes a :class:`~aecnn_utils.config.RunConfig` and writes everything a run
produces to ``runs/<profile>/<run-id>/``:

``config.yaml``  the configuration            ``norm.json``     training-set normalisation
``splits.csv``   cells per split and label    ``history.csv``   one row per epoch
``best.pt``      best model (by the monitor)  ``last.pt``       full state after the last epoch
``metrics.json`` validation and test metrics at 0.5 and at the validation-chosen threshold,
                 with bootstrap confidence intervals on the test cells
``predictions_val.csv``, ``predictions_test.csv``  per-cell probabilities

Every file is written atomically. ``last.pt`` holds model, optimiser, scheduler, AMP scaler and
RNG states, so a run interrupted at any point (Ctrl-C, a killed kernel) continues from its last
finished epoch when started again with the same config, and ends exactly as an uninterrupted run
would on a CPU. A completed run is reused, never silently overwritten.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import metrics as M
from .config import MONITORS, ConfigError, RunConfig
from .data import taxonomy
from .data.cache import CachedImages, cache_images
from .data.loaders import CellDataset, default_num_workers, make_loader, reseed_transform
from .data.readers import scan_dataset
from .data.sources import DataSource, project_dir, resolve_data_source
from .data.transforms import (
    NormStats,
    build_eval_transform,
    build_train_transform,
    compute_norm_stats,
)
from .device import resolve_device
from .io import atomic_path, atomic_write_json, atomic_write_text
from .losses import build_loss, class_counts
from .models import build_model, count_params
from .splits import Splits, make_splits

CHECKPOINT_FORMAT = "aecnn-kit/checkpoint-v1"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunInterrupted(RuntimeError):
    """Raised by a callback (or Ctrl-C) to stop a run after a finished epoch; resumable."""


def default_runs_dir() -> Path:
    """``runs/`` of the checkout."""
    return project_dir() / "runs"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (legacy global RNG used by third-party code)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


# ----------------------------------------------------------------------------- data
DATA_FIELDS: tuple[str, ...] = (
    "data_root", "scheme", "protocol", "train", "val", "test", "val_fraction", "test_fraction",
    "n_folds", "fold", "split_seed", "image_size", "resize_mode", "cric_crop_size",
    "synthetic_per_class")


def data_key(config: RunConfig) -> tuple:
    """The config fields that decide which cells go where, at which size."""
    return tuple(getattr(config, f) for f in DATA_FIELDS)


@dataclass
class PreparedData:
    """Splits of a config, decoded once, with the training-set normalisation."""

    source: DataSource
    splits: Splits
    caches: dict[str, CachedImages]
    norm: NormStats
    class_names: tuple[str, ...]
    key: tuple = ()

    @property
    def train_counts(self) -> torch.Tensor:
        """Cells per class in the training set."""
        return class_counts(self.caches["train"].frame["label"].to_numpy(),
                            len(self.class_names))


def prepare_data(config: RunConfig, cache_dir: str | Path | None = None,
                 progress: bool = True) -> PreparedData:
    """Read, split, decode (cached) and normalise the data ``config`` asks for."""
    source = resolve_data_source(config.data_root, n_per_class=config.synthetic_per_class)
    names = dict.fromkeys(config.train + (config.val + config.test
                                          if config.protocol == "cross" else ()))
    frames = {}
    for name in names:
        kwargs = {"crop_size": config.cric_crop_size} if name == "cric" else {}
        frames[name] = scan_dataset(name, source.path(name), scheme=config.scheme, **kwargs)
    splits = make_splits(config, frames)
    caches = {part: cache_images(getattr(splits, part), config.image_size, cache_dir,
                                 resize_mode=config.resize_mode, progress=progress)
              for part in ("train", "val", "test")}
    norm = compute_norm_stats(caches["train"].array())
    class_names = taxonomy.class_names(config.scheme, config.train[0])
    return PreparedData(source, splits, caches, norm, class_names, data_key(config))


# ----------------------------------------------------------------------------- schedule
def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate: linear warm-up, then cosine decay to zero
    (``cosine``, section 4) or flat (``constant``)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    _, keys, pos, *_ = np.random.get_state()  # noqa: NPY002
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(pos)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32),  # noqa: NPY002
                         state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ----------------------------------------------------------------------------- evaluation
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
        with _autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        if loss_fn is not None:
            total += float(loss_fn(logits, y)) * len(y)
            n += len(y)
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    return (np.concatenate(probs), np.concatenate(labels),
            total / n if n else float("nan"))


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _epoch_metrics(y: np.ndarray, probs: np.ndarray, loss: float) -> dict[str, float]:
    m = M.classification_metrics(y, probs)
    keys = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "sensitivity", "specificity")
    out = {"val_loss": loss}
    out.update({f"val_{'auc' if k == 'roc_auc' else k}": float(m[k]) for k in keys})
    return out


# ----------------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What a finished run left in its folder."""

    run_dir: Path
    config: RunConfig
    history: pd.DataFrame
    metrics: dict[str, Any]
    resumed_from_epoch: int = 0
    reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

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


def _predictions_frame(df: pd.DataFrame, probs: np.ndarray,
                       class_names: Sequence[str], threshold: float | None) -> pd.DataFrame:
    out = df[["path", "dataset", "source_class", "label", "label_name",
              "patient_or_slide"]].copy()
    out["path"] = out["path"].map(lambda p: Path(p).name)
    for k, name in enumerate(class_names):
        out[f"prob_{name}"] = probs[:, k]
    out["pred"] = probs.argmax(axis=1)
    if threshold is not None:
        out["pred_val_threshold"] = (probs[:, 1] >= threshold).astype(int)
    return out


def _final_metrics(config: RunConfig, data: PreparedData, results: dict[str, tuple]) -> dict:
    binary = len(data.class_names) == 2
    yv, pv = results["val"]
    yt, pt = results["test"]
    out: dict[str, Any] = {"val": M.classification_metrics(yv, pv, class_names=data.class_names),
                           "test": M.classification_metrics(yt, pt, class_names=data.class_names)}
    out["test_ci"] = M.bootstrap_ci(yt, pt, n_boot=config.n_boot, seed=config.seed)
    if binary and len(set(yv.tolist())) == 2:
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


# ----------------------------------------------------------------------------- training
def _train_one_epoch(model: nn.Module, loader: torch.utils.data.DataLoader, loss_fn: nn.Module,
                     optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler,
                     scaler: torch.amp.GradScaler, device: torch.device, *, amp: bool,
                     channels_last: bool, progress: bool, desc: str,
                     where: Callable[[int], str]) -> tuple[float, int, float]:
    """One pass over ``loader`` with a progress bar; returns (mean loss, images, seconds).

    Raises :class:`TrainingDiverged` on a NaN/inf loss, before the bad step touches the weights.
    """
    model.train()
    t0 = time.perf_counter()
    running, seen = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for step, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the loss became {loss.item()} {where(step)} Lower the "
                                   "learning rate or turn off AMP (amp=False).")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += loss.item() * len(y)
        seen += len(y)
        bar.set_postfix(loss=f"{running / seen:.4f}",
                        img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    return running / max(seen, 1), seen, time.perf_counter() - t0


def _make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_run(config: RunConfig, runs_dir: str | Path | None = None, *,
              data: PreparedData | None = None, if_exists: str = "resume",
              progress: bool = True, cache_dir: str | Path | None = None,
              callbacks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> RunResult:
    """Train and evaluate one model with one seed as ``config`` says.

    Args:
        config: the run's configuration (:func:`aecnn_utils.config.profile_config`).
        runs_dir: parent of ``<profile>/<run-id>/`` (default ``runs/`` of the checkout).
        data: data prepared by :func:`prepare_data` for this config (re-used across models).
        if_exists: a finished run is reused (``resume``, default) or replaced (``overwrite``)
            or refused (``error``); an unfinished one is resumed from ``last.pt`` unless
            ``overwrite``.
        progress: show progress bars.
        callbacks: called after every finished epoch with a dict of the epoch's state; a
            callback may raise :class:`RunInterrupted` to stop the run (resumable).

    Raises:
        TrainingDiverged: the loss became NaN/inf (the last good checkpoint is kept).
        RunInterrupted: a callback or Ctrl-C stopped the run after its last full epoch.
    """
    if if_exists not in ("resume", "overwrite", "error"):
        raise ValueError(f"if_exists must be 'resume', 'overwrite' or 'error', got {if_exists!r}")
    run_dir = Path(runs_dir or default_runs_dir()) / config.profile / config.run_id()
    if run_dir.exists() and if_exists == "overwrite":
        shutil.rmtree(run_dir)
    if (run_dir / "metrics.json").is_file():
        if if_exists == "error":
            raise FileExistsError(f"run {run_dir} already finished; pass if_exists='overwrite' "
                                  "to train it again")
        return load_run(run_dir)
    if (run_dir / "config.yaml").is_file():
        saved = RunConfig.load(run_dir / "config.yaml")
        if saved.fingerprint() != config.fingerprint():
            raise ConfigError(f"{run_dir} holds a different config; remove it or pass "
                              "if_exists='overwrite'")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")

    data = data or prepare_data(config, cache_dir, progress)
    if data.key != data_key(config):
        changed = [f for f, a, b in zip(DATA_FIELDS, data.key, data_key(config), strict=True)
                   if a != b]
        raise ConfigError(f"the data passed was prepared for another config (differs in "
                          f"{', '.join(changed)}); call prepare_data(config) for this one")
    data.norm.save(run_dir / "norm.json")
    data.splits.table().to_csv(run_dir / "splits.csv", index=False)
    device = resolve_device(config.device)
    use_amp = config.amp and device.type == "cuda"
    channels_last = config.channels_last and device.type == "cuda"
    num_classes = len(data.class_names)

    seed_everything(config.seed)
    model = build_model(config.model, num_classes, **config.model_kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(config.loss, counts=data.train_counts, gamma=config.gamma,
                         lambda_w=config.lambda_w, lambda_f=config.lambda_f,
                         method=config.weight_method).to(device)
    optimizer = _make_optimizer(config, model)

    workers = default_num_workers(device) if config.num_workers is None else config.num_workers
    train_ds = CellDataset(data.caches["train"],
                           build_train_transform(config.image_size, data.norm, config.augment))
    eval_tf = build_eval_transform(config.image_size, data.norm)
    train_loader = make_loader(train_ds, config.batch_size, shuffle=True, device=device,
                               num_workers=workers, seed=config.seed,
                               drop_last=len(train_ds) > config.batch_size,
                               persistent_workers=False)
    eval_loaders = {part: make_loader(CellDataset(data.caches[part], eval_tf),
                                      max(64, config.batch_size), shuffle=False, device=device,
                                      num_workers=workers)
                    for part in ("val", "test")}
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs
    warmup = steps_per_epoch * config.warmup_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup, config.schedule))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    mode = MONITORS[config.monitor]
    state = {"epoch": 0, "best_value": math.inf if mode == "min" else -math.inf,
             "best_epoch": 0, "bad_epochs": 0}
    history: list[dict[str, Any]] = []
    resumed_from = 0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    meta = {"format": CHECKPOINT_FORMAT, "model_name": config.model, "num_classes": num_classes,
            "model_kwargs": config.model_kwargs, "norm": {"mean": list(data.norm.mean),
                                                          "std": list(data.norm.std)},
            "image_size": config.image_size, "class_names": list(data.class_names),
            "run_id": config.run_id()}
    if last_path.is_file():
        ckpt = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        state = dict(ckpt["state"])
        history = pd.read_csv(run_dir / "history.csv").to_dict("records")
        resumed_from = state["epoch"]

    stopped_early = False
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["bad_epochs"] >= config.patience:  # resumed after early stopping
                stopped_early = True
                break
            epoch_seed = config.seed * 100_003 + epoch
            train_loader.generator.manual_seed(epoch_seed)
            reseed_transform(train_ds.transform, epoch_seed)
            last_good = last_path if last_path.is_file() else "none (first epoch)"
            train_loss, seen, train_seconds = _train_one_epoch(
                model, train_loader, loss_fn, optimizer, scheduler, scaler, device,
                amp=use_amp, channels_last=channels_last, progress=progress,
                desc=f"{config.model} epoch {epoch}/{config.epochs}",
                where=lambda step, e=epoch, g=last_good: (
                    f"at epoch {e}, step {step} (lr {scheduler.get_last_lr()[0]:.3g}). "
                    f"The last good checkpoint is {g}."))
            pv, yv, val_loss = predict(model, eval_loaders["val"], device, loss_fn, use_amp,
                                       channels_last)
            row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                   "train_loss": train_loss, **_epoch_metrics(yv, pv, val_loss),
                   "train_seconds": train_seconds,
                   "train_images_per_s": seen / max(train_seconds, 1e-9)}
            history.append(row)
            value = row[config.monitor]
            improved = (value < state["best_value"]) if mode == "min" else \
                (value > state["best_value"])
            if improved or state["best_epoch"] == 0:
                state.update(best_value=float(value), best_epoch=epoch, bad_epochs=0)
                _save({**meta, "model": model.state_dict(), "epoch": epoch,
                       "monitor": config.monitor, "value": float(value)}, best_path)
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            atomic_write_text(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
            _save({**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                   "rng": _rng_state(), "state": state}, last_path)
            if progress:
                tqdm.write(f"{config.model} epoch {epoch:>3}: train loss {row['train_loss']:.4f}"
                           f" | val loss {val_loss:.4f} auc {row['val_auc']:.3f} "
                           f"bal.acc {row['val_balanced_accuracy']:.3f} | "
                           f"{row['train_images_per_s']:.0f} img/s")
            for callback in callbacks:
                callback({"epoch": epoch, "row": row, "state": dict(state),
                          "run_dir": run_dir})
            if state["bad_epochs"] >= config.patience and epoch < config.epochs:
                stopped_early = True
                break
    except KeyboardInterrupt as exc:
        raise RunInterrupted(f"interrupted after epoch {state['epoch']}; run the same config "
                             f"again to resume from {last_path}") from exc

    # ---- final evaluation with the best checkpoint
    best = torch.load(best_path, map_location=device, weights_only=True)
    model.load_state_dict(best["model"])
    results = {}
    for part in ("val", "test"):
        probs, labels, _ = predict(model, eval_loaders[part], device, None, use_amp,
                                   channels_last)
        results[part] = (labels, probs)
    final = _final_metrics(config, data, results)
    threshold = final.get("threshold", {}).get("value")
    for part in ("val", "test"):
        _predictions_frame(data.caches[part].frame, results[part][1], data.class_names,
                           threshold).to_csv(run_dir / f"predictions_{part}.csv", index=False)
    summary = {
        "run_id": config.run_id(), "profile": config.profile, "model": config.model,
        "seed": config.seed, "data": data.source.notice, "synthetic": data.source.synthetic,
        "class_names": list(data.class_names), "params": count_params(model),
        "device": str(device), "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "stopped_early": stopped_early, "monitor": config.monitor,
        "train_seconds": float(sum(r["train_seconds"] for r in history)),
        "resumed_from_epoch": resumed_from, "sizes": data.splits.sizes(), **final,
    }
    atomic_write_json(run_dir / "metrics.json", summary)
    return RunResult(run_dir, config, pd.DataFrame(history), summary, resumed_from)


def train_seeds(config: RunConfig, runs_dir: str | Path | None = None,
                **kwargs: Any) -> list[RunResult]:
    """One run per seed of ``config.seeds`` (the splits follow each run's seed)."""
    return [train_run(config.replace(seed=s), runs_dir, **kwargs) for s in config.seeds]


def train_kfold(config: RunConfig, runs_dir: str | Path | None = None,
                **kwargs: Any) -> list[RunResult]:
    """Grouped k-fold cross-validation: one run per fold of ``config.n_folds``."""
    if config.protocol != "kfold":
        raise ConfigError("train_kfold needs protocol='kfold'")
    return [train_run(config.replace(fold=k), runs_dir, **kwargs)
            for k in range(config.n_folds)]


def collect_runs(runs_dir: str | Path | None = None, profile: str | None = None) -> pd.DataFrame:
    """One row per finished run under ``runs_dir`` (optionally one profile): identity, data,
    and the test metrics at 0.5 with their 95% bootstrap intervals."""
    root = Path(runs_dir or default_runs_dir())
    pattern = f"{profile}/*/metrics.json" if profile else "*/*/metrics.json"
    rows = []
    for path in sorted(root.glob(pattern)):
        m = json.loads(path.read_text(encoding="utf-8"))
        row = {k: m[k] for k in ("run_id", "profile", "model", "seed", "data", "synthetic",
                                 "best_epoch", "epochs_run", "train_seconds", "params")}
        for name, value in m["test"].items():
            if isinstance(value, (int, float)):
                row[f"test_{name}"] = value
        for name, ci in m.get("test_ci", {}).items():
            row[f"test_{name}_low"], row[f"test_{name}_high"] = ci["low"], ci["high"]
        rows.append(row)
    return pd.DataFrame(rows)


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
            row[name] = summary[name]["mean"] if name in summary else float("nan")
            row[f"{name}_std"] = summary[name]["std"] if name in summary else float("nan")
            ci = cis[0].get(name) or {}
            for bound in ("low", "high"):  # null in metrics.json where undefined
                value = ci.get(bound)
                row[f"{name}_{bound}"] = float("nan") if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows)


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
