"""Run folders and their results: what a finished run left, read back and tabulated.

A run folder ``runs/<profile>/<run-id>/`` (written by
:func:`aecnn_utils.training.engine.train_run`) holds:

``config.yaml``  the configuration            ``norm.json``     training-set normalisation
``splits.csv``   cells per split and label    ``history.csv``   one row per epoch
``best.pt``      best model (by the monitor)  ``last.pt``       full state after the last epoch
``epochs.npz``   the model's logits on every validation and test cell after each epoch
``metrics.json`` validation and test metrics at 0.5 and at the validation-chosen threshold,
                 with slide-level bootstrap intervals (and, with repeated splits, per split)
``predictions_val.csv``, ``predictions_test.csv``  per-cell probabilities
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout
from torch import nn

from aecnn_utils import __version__
from aecnn_utils.core.device import resolve_device
from aecnn_utils.core.errors import RunBusy
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.core.names import IF_EXISTS
from aecnn_utils.data.cache import CachedImages
from aecnn_utils.data.loaders import CellDataset, make_loader
from aecnn_utils.data.sources import project_dir
from aecnn_utils.data.transforms import InputPrep, NormStats, build_eval_transform
from aecnn_utils.models.tta import FlipTTA
from aecnn_utils.training.config import ConfigError, RunConfig
from aecnn_utils.training.prepare import PreparedData
from aecnn_utils.training.scoring import softmax


def default_runs_dir() -> Path:
    """``$AECNN_RUNS_DIR`` if set, else ``runs/`` of the checkout."""
    return Path(os.environ.get("AECNN_RUNS_DIR") or project_dir() / "runs")


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

    def epoch_logits(self, epoch: int | None = None) -> np.ndarray:
        """The stored logits (``epochs.npz``) of every pool cell: ``epochs x N x C``, or
        ``N x C`` at ``epoch`` (1-based; ``-1``: the last)."""
        logits = np.load(self.run_dir / "epochs.npz")["logits"]
        return logits if epoch is None else logits[epoch - 1 if epoch > 0 else epoch]

    @property
    def temperature(self) -> float:
        """The run's calibration temperature (1 for a run without one)."""
        return float((self.metrics.get("calibration") or {}).get("temperature", 1.0))

    @property
    def threshold(self) -> float | None:
        """The run's validation threshold on the scale of its calibrated probabilities (the
        same decisions as the run's own; ``None`` for a run without one)."""
        value = (self.metrics.get("threshold") or {}).get("value")
        return (self.metrics.get("calibration") or {}).get("threshold_calibrated", value)


def resolve_run(path: str | Path) -> Path:
    """The run folder of ``path`` (a run folder, or a checkpoint inside one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run folder "
                                "(runs/<profile>/<run-id>) or its best.pt")
    run_dir = path if path.is_dir() else path.parent
    missing = [n for n in ("config.yaml", "best.pt", "metrics.json") if not (run_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished run folder (no {', '.join(missing)});"
                                " train it to the end first")
    return run_dir


def load_run(run_dir: str | Path) -> RunResult:
    """Read a finished run folder."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no finished run (no metrics.json)")
    history = run_dir / "history.csv"  # a run folder copied with its checkpoint may lack it
    return RunResult(run_dir, RunConfig.load(run_dir / "config.yaml"),
                     pd.read_csv(history) if history.is_file() else pd.DataFrame(),
                     json.loads(metrics_path.read_text(encoding="utf-8")), reused=True)


def run_path(config: RunConfig, data: PreparedData, runs_dir: str | Path | None) -> Path:
    """Where the run of ``config`` on ``data`` lives (``<runs_dir>/<profile>/<run id>``)."""
    return (Path(runs_dir or default_runs_dir()) / config.profile
            / config.run_id(data.fingerprint))


@contextlib.contextmanager
def run_lock(run_dir: Path, wait: bool = True) -> Any:
    """Hold the lock of ``run_dir`` (``.locks/<run-id>.lock`` beside it) while a process trains
    or reads the run: a second process waits until the first has finished (``wait``), or gets
    :class:`~aecnn_utils.core.errors.RunBusy` at once. The operating system drops the lock of
    a process that dies, even by SIGKILL: the next call resumes the run from ``last.pt``."""
    locks = run_dir.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(locks / f"{run_dir.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise RunBusy(f"{run_dir.name} is being trained by another process") from None
        print(f"waiting for {run_dir.name}: another process is training it", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def open_run_dir(config: RunConfig, data: PreparedData, runs_dir: str | Path | None,
                 if_exists: str) -> tuple[Path, RunResult | None]:
    """The run's folder, and its result if it already finished and may be reused.

    ``if_exists``: a finished run is reused (``resume``), replaced (``overwrite``) or refused
    (``error``); an unfinished one is resumed unless ``overwrite``.
    """
    if if_exists not in IF_EXISTS:
        raise ConfigError(f"if_exists={if_exists!r} is not valid; choose one of: "
                          f"{', '.join(IF_EXISTS)}")
    run_dir = run_path(config, data, runs_dir)
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


#: Batch size of the AdaBN pass.
ADABN_BATCH = 64


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device,
                    channels_last: bool = False) -> nn.Module:
    """AdaBN (Li et al. 2018): a copy of ``model`` whose BatchNorm statistics are re-estimated
    on the (unlabelled) images of ``loader``. Transductive: it looks at the target images.

    The statistics are the average over batches of :data:`ADABN_BATCH` images in the dataset's
    order, whatever ``loader``'s batch size: the trainer and ``evaluate`` agree exactly.
    """
    adapted = copy.deepcopy(model).eval()
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    for x, _ in torch.utils.data.DataLoader(loader.dataset, batch_size=ADABN_BATCH):
        x = x.to(device, non_blocking=True)
        adapted(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    return adapted.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device,
                   amp: bool = False, channels_last: bool = False, tta: bool = False,
                   adapt_bn: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits (float32, ``N x C``) and labels of ``model`` over ``loader``.

    ``tta`` averages the logits over flips (:class:`aecnn_utils.models.tta.FlipTTA`);
    ``adapt_bn`` predicts with a copy whose BatchNorm statistics come from ``loader``'s images
    (:func:`adapt_batchnorm`).
    """
    if adapt_bn:
        model = adapt_batchnorm(model, loader, device, channels_last)
    model = (FlipTTA(model) if tta else model).eval()
    logits, labels = [], []
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits.append(model(x).float().cpu().numpy())
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_checkpoint(run: RunResult, data: PreparedData, part: str,
                        device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities of a run's best model on one split of ``data``
    (``train``, ``val`` or ``test``), with the run's own normalisation and image size."""
    from aecnn_utils.models import load_trained_model

    if part not in ("train", "pool", "val", "test"):
        raise ValueError(f"unknown split {part!r}; choose one of train, val, test, pool")
    dev = resolve_device(device)
    model, meta = load_trained_model(run.best_checkpoint, map_location=dev)
    cells = data.caches["train" if part == "train" else "pool"]
    meta = {**meta, "input": data.prep.mode_only.to_dict()}  # stain normalised in the cache
    return checkpoint_probs(model.to(dev), meta, cells, dev, data.index.get(part))


def checkpoint_probs(model: nn.Module, meta: dict[str, Any], cells: CachedImages,
                     device: torch.device, rows: np.ndarray | None = None,
                     temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities (``softmax(logits / temperature)``) of a trained model on
    cached cells (optionally only ``rows``), with the normalisation, image size, input
    preparation (stain normalisation, input mode) and inference options (TTA, AdaBN over these
    cells) its checkpoint ``meta`` records."""
    transform = build_eval_transform(int(meta["image_size"]), NormStats.from_dict(meta["norm"]),
                                     InputPrep.from_dict(meta.get("input")))
    dataset = CellDataset(cells, transform)
    if rows is not None:
        dataset = torch.utils.data.Subset(dataset, rows.tolist())
    logits, labels = predict_logits(model, make_loader(dataset, 128, shuffle=False,
                                                       device=device), device,
                                    **meta.get("inference", {}))
    return labels, softmax(logits / temperature)


# ----------------------------------------------------------------------------- results
def write_predictions(run_dir: Path, data: PreparedData, probs: np.ndarray,
                      threshold: float | None) -> None:
    """``predictions_val.csv`` and ``predictions_test.csv`` from class probabilities on the
    pool (:func:`predictions_frame`), written atomically."""
    for part in ("val", "test"):
        frame = predictions_frame(data.frame(part), probs[data.index[part]], data.class_names,
                                  threshold)
        atomic_write_text(run_dir / f"predictions_{part}.csv", frame.to_csv(index=False))


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


@functools.cache
def code_revision() -> str:
    """The code that trains: ``git describe --always --dirty`` of the checkout the package was
    imported from (``-dirty``: uncommitted changes; an installed copy says its version) and a
    hash of the package's source files, which names the code exactly even where the git
    metadata is stale or missing (e.g. a copied tree). Read once per process, when first asked
    (the trainer asks before its first epoch)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    described = __version__
    if (package.parent / ".git").exists():  # a checkout, not an installed copy
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            described = subprocess.run(
                ["git", "-C", str(package.parent), "describe", "--always", "--dirty"],
                capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    return f"{described} (source {digest.hexdigest()[:12]})"


#: The environment variable naming a file that every run used is noted in (``reproduce`` sets
#: it per notebook, to tell what each notebook trained and what training it stands on).
RUN_LOG = "AECNN_RUN_LOG"


def note_run(run: RunResult) -> RunResult:
    """Append ``run`` to the file ``$AECNN_RUN_LOG`` names, if set: its id, whether it was
    reused and its recorded training seconds (tab-separated). Returns ``run``."""
    log = os.environ.get(RUN_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{run.run_dir.name}\t{int(run.reused)}\t"
                    f"{float(run.metrics.get('train_seconds', 0.0)):.1f}\n")
    return run


def trained_on(run: RunResult) -> str:
    """Where a run trained, as its metrics recorded it (CUDA with mixed precision noted)."""
    device = str(run.metrics.get("device", "an unrecorded device"))
    return f"{device} (mixed precision)" if device.startswith("cuda") and run.config.amp else device
