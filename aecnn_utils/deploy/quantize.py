"""The int8 version of an exported run: static quantisation by ONNX Runtime, calibrated on the
run's own training cells, and its report against the float model (AUC, agreement, speed)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aecnn_utils.deploy.export import (
    INPUT_NAME,
    OnnxClassifier,
    ProbabilityModel,
    export_onnx,
    load_checkpoint,
    read_metadata,
    require,
    save_model,
    set_metadata,
)
from aecnn_utils.training.config import RunConfig

#: Cells the int8 calibration uses by default.
CALIBRATION_CELLS = 128


def run_cells(model_path: str | Path, part: str = "train", n: int | None = None, *,
              seed: int = 0, data_root: str | None = None, cache_dir: str | Path | None = None,
              progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cells of a run's ``part`` (``train``, ``val`` or ``test``; ``n`` of them drawn with
    ``seed``, in the part's order, or all), prepared as the run's evaluation prepares them:
    normalised float32 ``n x 3 x S x S`` images and their labels.

    The cells come from the data the run's ``config.yaml`` names (:func:`prepare_data`, cached),
    or from ``data_root`` when given (the same datasets elsewhere, e.g. a run trained with a
    relative path, used from another folder).
    """
    from aecnn_utils.data.transforms import InputPrep, NormStats, build_eval_transform
    from aecnn_utils.training.prepare import prepare_data

    if n is not None and n < 1:
        raise ValueError(f"at least one cell is needed, got n={n}")
    if part not in ("train", "val", "test"):
        raise ValueError(f"part={part!r} is not valid; choose train, val or test")
    trained = load_checkpoint(model_path)
    config = RunConfig.load(trained.run_dir / "config.yaml")
    if data_root:
        config = config.replace(data_root=str(data_root))
    data = prepare_data(config, cache_dir, progress)
    cells = data.caches["train" if part == "train" else "pool"]
    rows = np.arange(len(cells)) if part == "train" else np.asarray(data.index[part])
    if n is not None and n < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
    deploy = trained.deploy  # the cache holds stain-normalised cells: only the input mode left
    transform = build_eval_transform(deploy["image_size"], NormStats.from_dict(deploy["norm"]),
                                     InputPrep.from_dict(deploy["input"]).mode_only)
    array = cells.array()
    images = np.stack([transform(image=np.asarray(array[i]))["image"].numpy() for i in rows])
    return images, cells.frame["label"].to_numpy()[rows]


def calibration_images(model_path: str | Path, n: int = CALIBRATION_CELLS, *, seed: int = 0,
                       data_root: str | None = None, cache_dir: str | Path | None = None,
                       progress: bool = False) -> np.ndarray:
    """``n`` of the run's training cells (drawn with ``seed``, in the training set's order),
    prepared as the run's evaluation prepares them (:func:`run_cells`): the int8 calibration."""
    return run_cells(model_path, "train", n, seed=seed, data_root=data_root,
                     cache_dir=cache_dir, progress=progress)[0]


def _batches(images: np.ndarray | Iterable[np.ndarray], batch_size: int = 16
             ) -> Iterator[np.ndarray]:
    """Contiguous float32 ``N x 3 x S x S`` batches of an array or of an iterable of batches
    (or of single ``3 x S x S`` images)."""
    if isinstance(images, np.ndarray):
        images = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    for batch in images:
        batch = np.asarray(batch, dtype=np.float32)
        yield np.ascontiguousarray(batch[None] if batch.ndim == 3 else batch)


def quantize_int8(onnx_path: str | Path, calibration_images: np.ndarray | Iterable[np.ndarray],
                  out: str | Path | None = None, *, per_channel: bool = True) -> Path:
    """Static int8 quantisation (ONNX Runtime, QDQ format) of a model written by
    :func:`export_onnx`, calibrated (min-max) on ``calibration_images``: normalised float32
    ``N x 3 x S x S`` (an array, or an iterable of such batches or single images), e.g.
    :func:`calibration_images`. Default output: ``<name>.int8.onnx`` beside the input; written
    atomically, with the metadata carried over (``precision``: ``int8``).

    ``quant_pre_process`` (shape inference, BatchNorm folded into the convolutions) runs first,
    as ONNX Runtime recommends. Weights are quantised per output channel with 7 bits
    (``reduce_range``): x86 CPUs without VNNI (AVX2, AVX-512) saturate 8-bit products, and on
    such a CPU per-channel 8-bit weights moved the kit's test model's probabilities several
    times more than per-tensor ones; with 7 bits per-channel was the closest to float. The
    final softmax stays in float.
    """
    require("onnx", "onnxruntime")
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = Path(onnx_path)
    deploy = read_metadata(source)
    out = Path(out) if out else source.with_name(f"{source.stem}.int8.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = _batches(calibration_images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # ONNX shape inference and graph optimisation; the symbolic pass is for transformers
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        softmaxes = [node.name for node in onnx.load(str(prepared)).graph.node
                     if node.op_type == "Softmax"]
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=True,
                        nodes_to_exclude=softmaxes)
        model = onnx.load(str(quantized))
    set_metadata(model, {**deploy, "precision": "int8",
                          "quantization": {"format": "QDQ", "per_channel": per_channel,
                                           "reduce_range": True, "calibration": "minmax"}})
    return save_model(model, out)


def int8_report(model_path: str | Path, folder: str | Path, *, calibration: int = CALIBRATION_CELLS,
                batch_size: int = 32, reps: int = 3, threads: int | None = None,
                data_root: str | None = None, cache_dir: str | Path | None = None
                ) -> dict[str, Any]:
    """Export a run to ``folder`` (float32 and int8, calibrated on ``calibration`` training
    cells) and compare, on the run's validation cells: the AUC of PyTorch eager, ONNX Runtime
    float32 and int8 (binary runs), the largest probability difference of each ONNX model to
    eager, and their inference throughput (images/s, median of ``reps`` passes over the cells
    at ``batch_size``, eager with BatchNorm folded, as ``predict`` runs it). ``data_root``:
    where the run's datasets are, if not where its ``config.yaml`` says."""
    import statistics
    import time

    from sklearn.metrics import roc_auc_score

    from aecnn_utils.models import fuse_batchnorm

    folder = Path(folder)
    fp32 = export_onnx(model_path, folder / "model.onnx")
    int8 = quantize_int8(fp32, calibration_images(model_path, calibration, data_root=data_root,
                                                  cache_dir=cache_dir))
    images, labels = run_cells(model_path, "val", data_root=data_root, cache_dir=cache_dir)
    trained = load_checkpoint(model_path)
    fused = ProbabilityModel(fuse_batchnorm(trained.model), trained.deploy["tta"],
                             trained.deploy["temperature"]).eval()
    threads = threads or torch.get_num_threads()
    sessions = {"onnx": OnnxClassifier(fp32, threads=threads),
                "int8": OnnxClassifier(int8, threads=threads)}

    def eager(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return fused(torch.from_numpy(batch)).numpy()

    runners = {"eager": eager, **{k: v.probs for k, v in sessions.items()}}
    probs, speed = {}, {}
    for name, run in runners.items():
        seconds = []
        for _ in range(reps):
            start = time.perf_counter()
            out = np.concatenate([run(images[i:i + batch_size])
                                  for i in range(0, len(images), batch_size)])
            seconds.append(time.perf_counter() - start)
        probs[name], speed[name] = out, len(images) / statistics.median(seconds)
    report: dict[str, Any] = {"run_id": trained.deploy["run_id"], "cells": len(images),
                              "calibration_cells": calibration, "threads": threads}
    binary = probs["eager"].shape[1] == 2 and len(np.unique(labels)) == 2
    for name in runners:
        report[f"{name}_img_s"] = speed[name]
        report[f"{name}_auc"] = (float(roc_auc_score(labels, probs[name][:, 1])) if binary
                                 else None)
        if name != "eager":
            report[f"{name}_max_abs_diff"] = float(np.abs(probs[name] - probs["eager"]).max())
            report[f"{name}_same_class"] = float(
                (probs[name].argmax(1) == probs["eager"].argmax(1)).mean())
    return report
