"""Training engine (paper section 4): one run per config, resumable.

:func:`train_run` takes a :class:`~aecnn_utils.training.config.RunConfig` and builds everything
from it through one small function each (:mod:`aecnn_utils.training.build`); the run folder
it writes is described in :mod:`aecnn_utils.training.runs`.

Every file is written atomically. ``last.pt`` holds model, optimiser, scheduler, AMP scaler and
RNG states and the epoch history, so a run interrupted at any point (Ctrl-C, a killed kernel)
continues from its last finished epoch when started again with the same config, and ends exactly
as an uninterrupted run would on a CPU. A completed run is reused, never silently overwritten.
"""

from __future__ import annotations

import dataclasses
import math
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

from aecnn_utils.core.device import resolve_device
from aecnn_utils.core.errors import RunInterrupted, TrainingDiverged
from aecnn_utils.core.io import atomic_write_json
from aecnn_utils.data.loaders import reseed_transform
from aecnn_utils.models import CHECKPOINT_FORMAT, PRETRAINED, count_params
from aecnn_utils.training.build import (
    make_loaders,
    make_loss,
    make_model,
    make_optimizer,
    make_scheduler,
    seed_everything,
)
from aecnn_utils.training.checkpoints import (
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_history,
)
from aecnn_utils.training.config import MONITORS, ConfigError, RunConfig, profile_config
from aecnn_utils.training.finetune import Source, freeze_statistics, load_source, start_from
from aecnn_utils.training.prepare import PreparedData, prepare_data
from aecnn_utils.training.published import adopt
from aecnn_utils.training.runs import (
    RunResult,
    autocast,
    code_revision,
    note_run,
    open_run_dir,
    predict_logits,
    run_lock,
    run_path,
    write_predictions,
)
from aecnn_utils.training.scoring import evaluate_outputs, softmax, val_metrics

#: Version of what a run reports from its outputs; finished runs of an older one are re-scored.
EVALUATION_VERSION = 5  # 5: calibration (temperature, ECE)


def _train_one_epoch(model: nn.Module, loader: torch.utils.data.DataLoader, loss_fn: nn.Module,
                     optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler,
                     scaler: torch.amp.GradScaler, device: torch.device, *, amp: bool,
                     channels_last: bool, progress: bool, desc: str,
                     where: Callable[[int], str], mixup: float = 0.0,
                     finetune: str = "all") -> tuple[float, int, float]:
    """One pass over ``loader`` with a progress bar; returns (mean loss, images, seconds).

    ``mixup`` > 0 trains on convex mixtures of image pairs (Zhang et al. 2018): the mixing
    weight is drawn from Beta(mixup, mixup) per batch, and the loss is the same mixture of the
    losses against both labels.

    ``finetune`` ``head`` keeps BatchNorm's running statistics
    (:mod:`aecnn_utils.training.finetune`).

    Raises :class:`TrainingDiverged` on a NaN/inf loss, before the bad step touches the weights.
    """
    model.train()
    freeze_statistics(model, finetune)
    t0 = time.perf_counter()
    running, seen = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for step, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            if mixup > 0:
                lam = float(torch.distributions.Beta(mixup, mixup).sample())
                perm = torch.randperm(len(y), device=device)
                out = model(lam * x + (1 - lam) * x[perm])
                loss = lam * loss_fn(out, y) + (1 - lam) * loss_fn(out, y[perm])
            else:
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


# ----------------------------------------------------------------------------- one run
@dataclass
class _Run:
    """Everything one training run works with, built from its config."""

    config: RunConfig
    data: PreparedData
    run_dir: Path
    device: torch.device
    amp: bool
    channels_last: bool
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loaders: dict[str, torch.utils.data.DataLoader]
    meta: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)  # pool logits after each epoch
    resumed_from: int = 0

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"


def _build(config: RunConfig, data: PreparedData, run_dir: Path,
           source: Source | None = None) -> _Run:
    """Model, loss, optimiser, schedule and loaders of a run, seeded, on the chosen device;
    a fine-tune starts from its ``source``'s weights, with what it does not train frozen."""
    device = resolve_device(config.device)
    amp = config.amp and device.type == "cuda"
    # channels_last: faster convolutions on CUDA and on the CPU (oneDNN) for every model;
    # `make bench` measures both layouts
    channels_last = config.channels_last and device.type in ("cuda", "cpu")
    seed_everything(config.seed)
    model = make_model(config, len(data.class_names), device, channels_last)
    if source is not None:
        start_from(model, source, config.finetune)
    optimizer = make_optimizer(config, model)
    loaders = make_loaders(config, data, device)
    steps = len(loaders["train"])
    total, warmup = steps * config.epochs, steps * config.warmup_epochs
    scheduler = make_scheduler(optimizer, total, warmup, config.schedule)
    meta = {"format": CHECKPOINT_FORMAT, "model_name": config.model,
            "num_classes": len(data.class_names), "model_kwargs": config.model_kwargs,
            "norm": {"mean": list(data.norm.mean), "std": list(data.norm.std)},
            "image_size": config.image_size, "class_names": list(data.class_names),
            "input": data.prep.to_dict(),
            "inference": {"tta": config.tta, "adapt_bn": config.adapt_bn},
            "run_id": run_dir.name,
            **({"source_run": source.run_id} if source is not None else {})}
    worst = math.inf if MONITORS[config.monitor] == "min" else -math.inf
    return _Run(config, data, run_dir, device, amp, channels_last, model,
                make_loss(config, data.train_counts).to(device), optimizer, scheduler,
                torch.amp.GradScaler("cuda", enabled=amp), loaders, meta,
                state={"epoch": 0, "best_value": worst, "best_epoch": 0, "bad_epochs": 0})


def _resume(run: _Run) -> None:
    """Continue from ``last.pt`` if the run stopped before: weights, optimiser, schedule,
    scaler, RNG states, the epoch history and outputs are all restored from that one file."""
    if not run.last_path.is_file():
        return
    ckpt = torch.load(run.last_path, map_location=run.device, weights_only=True)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if isinstance(run.scheduler, torch.optim.lr_scheduler.SequentialLR) != (
            "_schedulers" in ckpt["scheduler"]):  # a last.pt of a kit before SequentialLR
        raise ConfigError(f"{run.last_path} holds an older kit's learning-rate schedule: train "
                          "the run again (if_exists='overwrite')")
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    run.state = dict(ckpt["state"])
    run.history = list(ckpt["history"])
    run.outputs = list(ckpt["outputs"].numpy())
    run.resumed_from = run.state["epoch"]


def _epoch(run: _Run, epoch: int, progress: bool) -> dict[str, Any]:
    """Train one epoch, validate, keep the best and last checkpoints; return the history row."""
    config = run.config
    epoch_seed = config.seed * 100_003 + epoch
    run.loaders["train"].generator.manual_seed(epoch_seed)
    reseed_transform(run.loaders["train"].dataset.transform, epoch_seed)
    last_good = run.last_path if run.last_path.is_file() else "none (first epoch)"
    train_loss, seen, seconds = _train_one_epoch(
        run.model, run.loaders["train"], run.loss_fn, run.optimizer, run.scheduler, run.scaler,
        run.device, amp=run.amp, channels_last=run.channels_last, progress=progress,
        desc=f"{config.model} epoch {epoch}/{config.epochs}",
        where=lambda step: (f"at epoch {epoch}, step {step} (lr "
                            f"{run.scheduler.get_last_lr()[0]:.3g}). The last good checkpoint "
                            f"is {last_good}."), mixup=config.mixup, finetune=config.finetune)
    logits, labels = predict_logits(run.model, run.loaders["pool"], run.device, run.amp,
                                    run.channels_last, tta=config.tta, adapt_bn=config.adapt_bn)
    if not np.isfinite(logits).all():
        raise TrainingDiverged(f"the validation outputs became NaN or infinite after epoch "
                               f"{epoch} (weights or BatchNorm statistics overflowed). Lower the "
                               f"learning rate (lr={config.lr}). The last good checkpoint is "
                               f"{last_good}.")
    val = run.data.index["val"]
    row = {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"], "train_loss": train_loss,
           **val_metrics(logits[val], labels[val], run.loss_fn), "train_seconds": seconds,
           "train_images_per_s": seen / max(seconds, 1e-9)}
    run.history.append(row)
    run.outputs.append(logits)
    state, value = run.state, float(row[config.monitor])
    better = value < state["best_value"] if MONITORS[config.monitor] == "min" else \
        value > state["best_value"]
    if state["bad_epochs"] >= config.patience:
        pass  # early stopping has chosen (training goes on only for repeated splits)
    elif better or state["best_epoch"] == 0:
        state.update(best_value=value, best_epoch=epoch, bad_epochs=0)
        save_checkpoint({**run.meta, "model": run.model.state_dict(), "epoch": epoch,
                         "monitor": config.monitor, "value": value}, run.best_path)
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch
    # last.pt (with the history) first: a kill before history.csv loses nothing on resume
    save_checkpoint({**run.meta, "model": run.model.state_dict(),
                     "optimizer": run.optimizer.state_dict(),
                     "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
                     "rng": rng_state(), "state": state, "history": run.history,
                     "outputs": torch.from_numpy(np.stack(run.outputs))}, run.last_path)
    write_history(run.run_dir, run.history, run.outputs)
    if progress:
        tqdm.write(f"{config.model} epoch {epoch:>3}: train loss {train_loss:.4f} | val loss "
                   f"{row['val_loss']:.4f} auc {row['val_auc']:.3f} bal.acc "
                   f"{row['val_balanced_accuracy']:.3f} | {row['train_images_per_s']:.0f} img/s")
    return row


def _fit(run: _Run, progress: bool,
         callbacks: Sequence[Callable[[dict[str, Any]], None]]) -> bool:
    """Epochs from the last finished one to the end or early stop; True if stopped early.

    With ``n_splits`` > 1 every epoch runs: each split replays early stopping on its own
    selection half afterwards (:mod:`aecnn_utils.training.scoring`)."""
    config, state = run.config, run.state
    patience = config.patience if config.n_splits == 1 else config.epochs + 1
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["bad_epochs"] >= patience:  # resumed after early stopping
                return True
            row = _epoch(run, epoch, progress)
            for callback in callbacks:
                callback({"epoch": epoch, "row": row, "state": dict(state),
                          "run_dir": run.run_dir})
            if state["bad_epochs"] >= patience and epoch < config.epochs:
                return True
    except KeyboardInterrupt as exc:
        raise RunInterrupted(f"interrupted after epoch {state['epoch']}; run the same config "
                             f"again to resume from {run.last_path}") from exc
    return False


def _finish(run: _Run, stopped_early: bool) -> RunResult:
    """Score the best epoch from the stored outputs (and, with ``n_splits`` > 1, every split);
    write predictions and metrics."""
    config, data = run.config, run.data
    pool, outputs = data.frame("pool"), np.stack(run.outputs)
    final = evaluate_outputs(config, data.class_names, pool, outputs, data.index, run.loss_fn,
                             best_epoch=run.state["best_epoch"])
    probs = softmax(outputs[run.state["best_epoch"] - 1])
    threshold = final.get("threshold", {}).get("value")
    write_predictions(run.run_dir, data, probs, threshold)
    summary = {
        "evaluation_version": EVALUATION_VERSION,
        "run_id": run.run_dir.name, "profile": config.profile, "model": config.model,
        "seed": config.seed, "data": data.source.notice, "synthetic": data.source.synthetic,
        "data_fingerprint": data.fingerprint, "class_names": list(data.class_names),
        "train_counts": data.train_counts.tolist(),
        "params": count_params(run.model), "device": str(run.device), "code": code_revision(),
        "epochs_run": run.state["epoch"], "stopped_early": stopped_early,
        "monitor": config.monitor,
        "train_seconds": float(sum(r["train_seconds"] for r in run.history)),
        "resumed_from_epoch": run.resumed_from, "sizes": data.splits.sizes(), **final,
        **({"source_run": run.meta["source_run"]} if "source_run" in run.meta else {}),
    }
    atomic_write_json(run.run_dir / "metrics.json", summary)
    return RunResult(run.run_dir, config, pd.DataFrame(run.history), summary, run.resumed_from)


def refresh_metrics(run: RunResult, data: PreparedData) -> RunResult:
    """A finished run re-scored from its stored outputs (``epochs.npz``) when it was scored by
    an older evaluation (:data:`EVALUATION_VERSION`): no retraining; ``metrics.json`` is
    rewritten with the new scores."""
    if run.metrics.get("evaluation_version") == EVALUATION_VERSION:
        return run
    outputs = run.epoch_logits()
    if outputs.shape[1] != len(data.frame("pool")):
        raise ConfigError(f"{run.run_dir} holds outputs for {outputs.shape[1]} cells, the data "
                          f"has {len(data.frame('pool'))}: train it again (if_exists="
                          "'overwrite')")
    loss_fn = make_loss(run.config, torch.tensor(run.metrics["train_counts"]))
    final = evaluate_outputs(run.config, data.class_names, data.frame("pool"), outputs,
                             data.index, loss_fn)
    if final["best_epoch"] != run.metrics["best_epoch"]:  # best.pt holds another epoch
        raise ConfigError(f"{run.run_dir} kept epoch {run.metrics['best_epoch']} as best.pt, "
                          f"but early stopping replayed on its outputs keeps epoch "
                          f"{final['best_epoch']}: train it again (if_exists='overwrite')")
    metrics = {**run.metrics, **final, "evaluation_version": EVALUATION_VERSION}
    atomic_write_json(run.run_dir / "metrics.json", metrics)
    return RunResult(run.run_dir, run.config, run.history, metrics, reused=True)


def train_run(config: RunConfig, runs_dir: str | Path | None = None, *,
              data: PreparedData | None = None, if_exists: str = "resume",
              progress: bool = True, cache_dir: str | Path | None = None,
              callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
              wait: bool = True) -> RunResult:
    """Train and evaluate one model with one seed as ``config`` says.

    Args:
        config: the run's configuration (:func:`aecnn_utils.training.config.profile_config`).
        runs_dir: parent of ``<profile>/<run-id>/`` (default ``runs/`` of the checkout).
        data: data prepared by :func:`prepare_data` for this config (re-used across models).
        if_exists: a finished run is reused (``resume``, default), replaced (``overwrite``) or
            refused (``error``); an unfinished one resumes from ``last.pt`` unless overwritten.
        progress: show progress bars.
        cache_dir: decoded-image cache (default ``$AECNN_CACHE_DIR`` or the user cache).
        callbacks: called after every finished epoch with a dict of the epoch's state; a
            callback may raise :class:`RunInterrupted` to stop the run (resumable).
        wait: a run another process trains (:func:`run_lock`) is waited for, then reused;
            ``False`` raises :class:`RunBusy` instead (a worker moves on).

    Raises:
        TrainingDiverged: the loss became NaN/inf (the last good checkpoint is kept).
        RunInterrupted: a callback or Ctrl-C stopped the run after its last full epoch.
    """
    data = data or prepare_data(config, cache_dir, progress)
    data.check_matches(config)
    path = run_path(config, data, runs_dir)
    with run_lock(path, wait):  # one process per run folder
        if if_exists != "overwrite":  # a published run this machine has not trained
            adopt(path, config.profile)
        source = None
        reused = if_exists != "overwrite" and (path / "metrics.json").is_file()
        if config.init_from and not reused:  # a finished fine-tune needs no source weights
            source = load_source(config)
            data = source.adopt(data)  # the source's normalisation (norm.json, best.pt)
        run_dir, finished = open_run_dir(config, data, runs_dir, if_exists)
        if finished is not None:  # the caller's config: the same run, the data where it is now
            return note_run(refresh_metrics(dataclasses.replace(finished, config=config), data))
        code_revision()  # the code as training starts
        run = _build(config, data, run_dir, source)
        _resume(run)
        return note_run(_finish(run, _fit(run, progress, callbacks)))


def train_config(config: RunConfig, runs_dir: str | Path | None = None,
                 **kwargs: Any) -> list[RunResult]:
    """Every run ``config`` asks for: one per fold of ``n_folds`` (grouped k-fold) or one per
    seed of ``seeds`` (the splits stay those of ``split_seed``)."""
    changes = ([{"fold": k} for k in range(config.n_folds)] if config.protocol == "kfold"
               else [{"seed": s} for s in config.seeds])
    return [train_run(config.replace(**c), runs_dir, **kwargs) for c in changes]


def train_models(profile: str, models: Sequence[str], runs_dir: str | Path | None = None, *,
                 data: PreparedData | None = None, seed: int = 0, progress: bool = True,
                 pretrained: dict[str, Path] | None = None,
                 **overrides: Any) -> dict[str, list[RunResult]]:
    """Every model under a profile, each with its own tuned values, on the same data; the
    profile's seeds are counted from ``seed``. ``pretrained`` (model -> local ImageNet weights
    file, :func:`aecnn_utils.models.pretrained_weights`) adds a ``<model>+imagenet`` entry
    started from those weights, reported as a separate row."""
    jobs = [(m, m, {}) for m in models]
    jobs += [(m + PRETRAINED, m, {"model_kwargs": {"weights_path": str(path)}})
             for m, path in (pretrained or {}).items()]
    results = {}
    for key, model, extra in jobs:
        config = profile_config(profile, model=model, **{**overrides, **extra})
        config = config.replace(seeds=[seed + s for s in config.seeds])
        data = data if data is not None else prepare_data(config, progress=progress)
        results[key] = train_config(config, runs_dir, data=data, progress=progress)
    return results
