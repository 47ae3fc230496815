"""Classifying cell images with a trained model: ``python -m aecnn_utils predict MODEL IMAGES...``.

MODEL is a finished run folder, a kit checkpoint (``.pt``) inside one, or an ``.onnx`` file
written by :mod:`aecnn_utils.deploy.export` (which carries everything it needs in its metadata).
Each image is prepared exactly as the run's evaluation prepares a cell: decoded
(:func:`aecnn_utils.data.images.load_image`), squared and resized with the run's resize mode
(:func:`aecnn_utils.data.cache.square_resize`, as the image cache does), then the run's stain
normalisation, input mode and normalisation
(:func:`aecnn_utils.data.transforms.build_eval_transform`). One CSV row per image: the run's
answer (the screening decision at the run's validation threshold in a binary run, else the most
probable class) with its probability, every class's probability (calibrated with the run's
temperature, :mod:`aecnn_utils.evaluation.calibration`), the threshold on that scale, the most
probable class under its own name, and the error of an image that could not be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aecnn_utils.core.errors import warn
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.data.cache import RESIZE_MODES, square_resize
from aecnn_utils.data.errors import CorruptImageError, DataError, DatasetNotFoundError, DataWarning
from aecnn_utils.data.images import IMAGE_SUFFIXES, is_image_file, load_image
from aecnn_utils.data.masks import is_herlev_mask

ON_ERROR: tuple[str, ...] = ("raise", "warn")


class Backend(Protocol):
    """What prediction needs of a model: its deployment metadata and batched probabilities."""

    metadata: dict[str, Any]

    def probs(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``N x C`` of a normalised float32 ``N x 3 x S x S`` batch."""
        ...


class TorchBackend:
    """A run's checkpoint in PyTorch (BatchNorm folded into the convolutions,
    :func:`aecnn_utils.models.fuse_batchnorm`; ``channels_last`` on CPU and CUDA), with the
    run's TTA, through :func:`aecnn_utils.training.runs.predict_logits`."""

    def __init__(self, model_path: str | Path, device: str = "auto") -> None:
        import torch

        from aecnn_utils.core.device import resolve_device
        from aecnn_utils.deploy.export import load_checkpoint, refuse_adabn
        from aecnn_utils.models import fuse_batchnorm

        trained = load_checkpoint(model_path)
        refuse_adabn(trained.deploy, "prediction on single cells")
        self.metadata = trained.deploy
        self.device = resolve_device(device)
        self.channels_last = self.device.type in ("cpu", "cuda")
        self.model = fuse_batchnorm(trained.model).to(self.device)  # AdaBN runs are refused
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def probs(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (float32 ``N x C``) of a normalised ``N x 3 x S x S`` batch."""
        import torch

        from aecnn_utils.training.runs import predict_logits
        from aecnn_utils.training.scoring import softmax

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        logits, _ = predict_logits(self.model, [(x, torch.zeros(len(x)))],  # type: ignore[arg-type]
                                   self.device, channels_last=self.channels_last,
                                   tta=self.metadata["tta"])
        return softmax(logits / self.metadata["temperature"]).astype(np.float32)


def check_model_path(model_path: str | Path) -> Path:
    """``model_path`` if it can be a model (a folder, a ``.pt`` or an ``.onnx`` file that
    exists), else a one-line error that says what to give."""
    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist: give a run folder "
                                "(runs/<profile>/<run-id>), its best.pt, or an exported .onnx")
    if path.is_file() and path.suffix.lower() not in (".onnx", ".pt"):
        raise ValueError(f"{path} is not a model: give a run folder (runs/<profile>/<run-id>), "
                         "a kit checkpoint (.pt) or an exported .onnx")
    return path


def load_backend(model_path: str | Path, device: str = "auto",
                 threads: int | None = None) -> Backend:
    """The backend of ``model_path``: ONNX Runtime (CPU; ``threads`` intra-op threads) for an
    ``.onnx`` file, PyTorch on ``device`` for a run folder or a ``.pt`` checkpoint."""
    from aecnn_utils.deploy.export import OnnxClassifier

    path = check_model_path(model_path)
    if path.suffix.lower() == ".onnx":
        return OnnxClassifier(path, threads=threads)
    return TorchBackend(path, device)


def _in_folder(path: Path, folder: Path) -> bool:
    """An image of ``folder`` to classify: not hidden, not a Herlev mask (``*-d.bmp``)."""
    return (path.is_file() and is_image_file(path) and not is_herlev_mask(path)
            and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files of ``paths``: files as given, and folders searched recursively (each
    sorted; hidden files and Herlev's segmentation masks ``*-d.bmp`` left out), each once."""
    found: list[Path] = []
    for item in map(Path, paths):
        if not item.exists():
            raise DatasetNotFoundError(f"{item} does not exist: give image files or folders")
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if _in_folder(p, item))
        elif is_image_file(item):
            found.append(item)
        else:
            raise DataError(f"{item} is not an image file (supported: "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    if not found:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in "
                        f"{', '.join(map(str, paths))}")
    return list(dict.fromkeys(found))


@dataclass
class Preprocess:
    """A raw cell image -> the normalised float32 ``3 x S x S`` array the model takes, as the
    run's evaluation prepares it (from the deployment metadata of
    :mod:`aecnn_utils.deploy.export`)."""

    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        from aecnn_utils.data.transforms import InputPrep, NormStats, build_eval_transform

        mode = self.metadata.get("resize_mode", "pad")
        if mode not in RESIZE_MODES:
            raise ValueError(f"the model was trained with resize_mode={mode!r}, which this kit "
                             f"cannot apply (it knows {', '.join(RESIZE_MODES)}): use the kit "
                             "version that trained it")
        self.size, self.mode = int(self.metadata["image_size"]), mode
        self.transform = build_eval_transform(self.size, NormStats.from_dict(
            self.metadata["norm"]), InputPrep.from_dict(self.metadata.get("input")))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Prepare one RGB ``uint8`` image (any size)."""
        try:
            cell = square_resize(image, self.size, self.mode)
        except (ValueError, IndexError) as exc:  # segmentation found no cell or nucleus
            raise DataError(f"resize_mode={self.mode!r} cannot be applied: no "
                            f"{'cell' if self.mode == 'cell' else 'nucleus'} found ({exc})"
                            ) from exc
        return self.transform(image=cell)["image"].numpy()

    def load(self, path: Path) -> np.ndarray:
        """Decode and prepare one image file; a :class:`DataError` naming it if it fails."""
        try:
            return self(load_image(path))
        except CorruptImageError as exc:
            reason = exc.__cause__ or exc
            raise DataError(f"cannot read {path}: {_one_line(reason)}") from exc
        except DataError as exc:
            raise DataError(f"{path}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def predictions_table(paths: Sequence[Path], probs: np.ndarray, errors: Sequence[str],
                      metadata: dict[str, Any]) -> pd.DataFrame:
    """The CSV's rows, one answer each: ``path``, ``class`` (the run's answer: in a binary run
    the second class if its probability reaches the run's validation ``threshold``, else the
    first; otherwise the most probable class), ``probability`` (of that class),
    ``prob_<class>``, ``threshold``, ``most_probable`` (the class of highest probability,
    which ignores the threshold), ``temperature``, ``error``. The probabilities are the run's
    calibrated ones (its temperature; 1 for runs without one). Rows with an error have no
    class or probabilities."""
    names = list(metadata["class_names"])
    ok = np.array([not e for e in errors], dtype=bool)
    full = np.full((len(paths), len(names)), np.nan)
    full[ok] = probs
    top = np.nan_to_num(full).argmax(axis=1)
    threshold = metadata.get("threshold")
    binary = len(names) == 2 and threshold is not None
    answer = (full[:, 1] >= threshold).astype(int) if binary else top
    table = pd.DataFrame({"path": [str(p) for p in paths],
                          "class": np.where(ok, np.array(names)[answer], ""),
                          "probability": np.where(ok, full[np.arange(len(answer)), answer],
                                                  np.nan)})
    for k, name in enumerate(names):
        table[f"prob_{name}"] = full[:, k]
    table["threshold"] = threshold if binary else np.nan
    table["most_probable"] = np.where(ok, np.array(names)[top], "")
    table["temperature"] = metadata.get("temperature", 1.0)
    table["error"] = list(errors)
    return table


def predict(model_path: str | Path, images: Sequence[str | Path], *, batch_size: int = 32,
            device: str = "auto", on_error: str = "raise", progress: bool | None = None,
            threads: int | None = None) -> pd.DataFrame:
    """Classify every image of ``images`` (files and folders) with ``model_path`` (run folder,
    ``.pt`` or ``.onnx``); return :func:`predictions_table`.

    ``on_error="raise"`` stops at the first unreadable image with a :class:`DataError` naming
    it; ``"warn"`` skips it with a warning and keeps it as a row with its error. ``progress``
    shows a bar over batches (``None``: only on a terminal).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}; choose one of {', '.join(ON_ERROR)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    check_model_path(model_path)
    files = find_images(images)  # bad paths fail before the model loads
    backend = load_backend(model_path, device, threads)
    prepare = Preprocess(backend.metadata)
    errors: list[str] = []
    probs: list[np.ndarray] = []
    starts = range(0, len(files), batch_size)
    for start in tqdm(starts, desc="predicting", unit="batch",
                      disable=None if progress is None else not progress):
        batch = []
        for path in files[start:start + batch_size]:
            try:
                batch.append(prepare.load(path))
                errors.append("")
            except DataError as exc:
                if on_error == "raise":
                    raise DataError(f"{exc}; fix or remove the file, or use --on-error warn "
                                    "(on_error='warn') to skip it") from exc
                warn(f"skipping an unreadable image: {exc}", DataWarning)
                errors.append(str(exc))
        if batch:
            probs.append(backend.probs(np.stack(batch)))
    n_classes = len(backend.metadata["class_names"])
    stacked = np.concatenate(probs) if probs else np.zeros((0, n_classes), np.float32)
    return predictions_table(files, stacked, errors, backend.metadata)


def write_predictions(table: pd.DataFrame, out: str | Path) -> Path:
    """Write the table as CSV, atomically."""
    return atomic_write_text(out, table.to_csv(index=False))


def summary_line(table: pd.DataFrame, out: Path) -> str:
    """One line: cells classified, decisions, skipped images, where the CSV went."""
    good = table[table["error"] == ""]
    counts = ", ".join(f"{n} {name}" for name, n in good["class"].value_counts().items())
    text = f"{len(good)} cells classified ({counts or 'none'}"
    if good["threshold"].notna().any():
        text += f"; at the run's threshold {good['threshold'].iloc[0]:.3f}"
    text += ")"
    if len(good) < len(table):
        text += f", {len(table) - len(good)} unreadable skipped"
    return text + f" -> {out}"
