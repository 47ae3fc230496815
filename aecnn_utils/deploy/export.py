"""Deployment: a finished run as an ONNX model, and an ONNX Runtime runner.

``python -m aecnn_utils export RUN`` writes ``<run>/model.onnx``: the run's best model with the
softmax (and, if the run predicts with flip TTA, the flip average of
:func:`aecnn_utils.training.runs.predict_logits`) inside the graph, so that it outputs class
probabilities for a batch of any size. Everything needed to prepare a cell and read the output
travels in the model's ``metadata_props`` (JSON strings, :func:`deployment_metadata`):
normalisation, image size, resize mode, input preparation (stain normalisation, input mode),
class names, the run's temperature (calibration, :mod:`aecnn_utils.evaluation.calibration`: the
graph divides the logits by it before the softmax) and its validation threshold on that scale, run
id, model name and arguments, kit version.
``--int8`` adds ``model.int8.onnx``, statically quantised by ONNX Runtime on the run's own
training cells (:func:`aecnn_utils.deploy.quantize.quantize_int8`).

The export uses torch's ``torch.export``-based exporter (``dynamo=True``, which needs
``onnxscript``); the older TorchScript exporter is deprecated in torch 2.9 and later.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aecnn_utils import __version__
from aecnn_utils.core.errors import MissingDependency
from aecnn_utils.core.io import atomic_path
from aecnn_utils.models.tta import FlipTTA
from aecnn_utils.training.published import output_dir
from aecnn_utils.training.runs import load_run, predict_logits, resolve_run
from aecnn_utils.training.scoring import softmax

#: ONNX opset of the export (the native opset of torch 2.14's exporter).
DEFAULT_OPSET = 20
#: Names of the graph's input (normalised ``N x 3 x S x S`` float32) and output (``N x C``).
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
#: ``metadata_props["format"]`` of the kit's ONNX models.
ONNX_FORMAT = "aecnn-kit/onnx-v1"


def require(*modules: str) -> None:
    """Raise :class:`MissingDependency` naming the fix if a module of ``modules`` is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"{', '.join(missing)} is not installed: ONNX export and "
                                "inference need the kit's deploy extra (pip install -e "
                                "'.[deploy]', or pip install onnx onnxruntime onnxscript)")


@dataclass
class TrainedModel:
    """A run's checkpoint, loaded: the model (eval mode, CPU), the checkpoint's metadata and
    the deployment metadata (:func:`deployment_metadata`)."""

    run_dir: Path
    checkpoint: Path
    model: nn.Module
    meta: dict[str, Any]
    deploy: dict[str, Any]


def load_checkpoint(model_path: str | Path) -> TrainedModel:
    """Load a finished run folder (its ``best.pt``) or a kit checkpoint (``.pt``) inside one.

    The run folder is needed besides the weights: its ``config.yaml`` names the resize mode and
    its ``metrics.json`` the validation threshold.
    """
    from aecnn_utils.models import load_trained_model

    path = Path(model_path)
    if path.is_file() and path.suffix != ".pt":
        raise ValueError(f"{path} is not a run folder or a kit checkpoint (.pt)")
    if path.is_file() and not (path.parent / "config.yaml").is_file():
        raise ValueError(f"{path} is not inside its run folder: a checkpoint needs the run's "
                         "config.yaml and metrics.json beside it (resize mode, threshold); give "
                         "the run folder, or a .onnx exported from it")
    run_dir = resolve_run(path)
    checkpoint = path if path.is_file() else run_dir / "best.pt"
    model, meta = load_trained_model(checkpoint, map_location="cpu")
    return TrainedModel(run_dir, checkpoint, model, meta, deployment_metadata(run_dir, meta))


def deployment_metadata(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """What preparing a cell and reading the model's output need, from a run folder and its
    checkpoint metadata ``meta`` (as written by the trainer)."""
    run = load_run(run_dir)
    config, run_metrics, temperature = run.config, run.metrics, run.temperature
    threshold = run_metrics.get("threshold", {})
    calibration = run_metrics.get("calibration") or {}
    inference = meta.get("inference", {})
    return {"format": ONNX_FORMAT, "run_id": meta.get("run_id", run_dir.name),
            "model_name": meta["model_name"], "model_kwargs": meta.get("model_kwargs", {}),
            "scheme": config.scheme, "class_names": list(meta["class_names"]),
            "image_size": int(meta["image_size"]), "resize_mode": config.resize_mode,
            "norm": meta["norm"], "input": meta.get("input") or {},
            "tta": bool(inference.get("tta", False)),
            "adapt_bn": bool(inference.get("adapt_bn", False)),
            "temperature": temperature,
            "temperature_fitted_on": calibration.get("fitted_on", "none (no calibration)"),
            "threshold": run.threshold,  # on the calibrated scale: the run's decisions
            "threshold_uncalibrated": threshold.get("value"),
            "threshold_rule": threshold.get("rule"), "kit_version": __version__}


def refuse_adabn(deploy: dict[str, Any], what: str) -> None:
    """Raise ``ValueError`` if the run predicts with AdaBN, which ``what`` cannot do."""
    if deploy.get("adapt_bn"):
        raise ValueError(f"run {deploy['run_id']} predicts with AdaBN (adapt_bn=true): its "
                         "BatchNorm statistics are re-estimated on a set of target cells "
                         f"(transductive), which {what} cannot do; use a run trained with "
                         "adapt_bn=false, or score a dataset folder with "
                         "'python -m aecnn_utils evaluate'")


class ProbabilityModel(nn.Module):
    """``model`` followed by a softmax over classes of its logits divided by ``temperature``
    (the run's calibration); with ``tta``, the logits are first averaged over flips
    (:class:`aecnn_utils.models.tta.FlipTTA`, as :func:`predict_logits` does)."""

    def __init__(self, model: nn.Module, tta: bool = False, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = FlipTTA(model) if tta else model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``N x C`` of a normalised ``N x 3 x S x S`` batch."""
        return torch.softmax(self.model(x).float() / self.temperature, dim=1)


def set_metadata(model: Any, deploy: dict[str, Any]) -> None:
    """Replace ``model.metadata_props`` (an ``onnx.ModelProto``) by ``deploy`` as JSON."""
    del model.metadata_props[:]
    for key, value in deploy.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)


def save_model(model: Any, out: Path) -> Path:
    """Check and write an ``onnx.ModelProto`` atomically (weights inside the file)."""
    import onnx

    onnx.checker.check_model(model)
    with atomic_path(out) as tmp:
        onnx.save_model(model, str(tmp), format="protobuf")
    return out


def export_onnx(model_path: str | Path, out: str | Path | None = None, *,
                opset: int = DEFAULT_OPSET, tta: bool | None = None) -> Path:
    """Export a finished run (folder or ``.pt`` checkpoint) to ONNX; return the file's path.

    The graph maps a normalised float32 ``N x 3 x S x S`` batch (any ``N``) to class
    probabilities. ``tta`` (default: the run's own setting) bakes the flip average in. Runs
    that predict with AdaBN are refused. Default output: ``<run>/model.onnx``; written
    atomically.
    """
    trained = load_checkpoint(model_path)
    deploy = trained.deploy
    refuse_adabn(deploy, "a fixed ONNX graph")
    deploy = {**deploy, "tta": deploy["tta"] if tta is None else bool(tta)}
    return export_module(trained.model,
                         Path(out) if out else output_dir(trained.run_dir) / "model.onnx",
                         deploy, opset=opset)


def export_module(model: nn.Module, out: str | Path, deploy: dict[str, Any], *,
                  opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` (any classifier; softmax and, with ``deploy["tta"]``, the flip average
    added) to ``out`` with ``deploy`` as its metadata (it needs ``image_size``; a run's comes
    from :func:`deployment_metadata`); dynamic batch; written atomically."""
    require("onnx", "onnxscript")
    import onnx

    if torch.__version__ < "2.6":
        raise MissingDependency(f"ONNX export needs torch 2.6 or newer (its torch.export-based "
                                f"exporter); this is torch {torch.__version__}")
    deploy = {"format": ONNX_FORMAT, **deploy, "tta": bool(deploy.get("tta", False)),
              "opset": opset, "precision": "float32"}
    size = int(deploy["image_size"])
    wrapped = ProbabilityModel(model, deploy["tta"], deploy.get("temperature", 1.0)).eval()
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapped, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset, dynamo=True, external_data=False,
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:  # the program's own save, then add metadata
        program.save(str(Path(tmp) / "model.onnx"), external_data=False)
        proto = onnx.load(str(Path(tmp) / "model.onnx"))
    set_metadata(proto, deploy)
    return save_model(proto, Path(out))


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The deployment metadata of a model written by :func:`export_onnx` (or
    :func:`aecnn_utils.deploy.quantize.quantize_int8`); ``ValueError`` for any other file."""
    return OnnxClassifier(onnx_path).metadata


class OnnxClassifier:
    """An exported model in an ONNX Runtime CPU session.

    ``threads`` sets the session's intra-op threads (default: ONNX Runtime's choice).
    """

    def __init__(self, onnx_path: str | Path, *, threads: int | None = None) -> None:
        require("onnxruntime")
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"{path} is not a readable ONNX model ({reason})") from exc
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("format") != json.dumps(ONNX_FORMAT):
            raise ValueError(f"{path} was not exported by aecnn-kit (no {ONNX_FORMAT!r} "
                             "metadata); export a run with 'python -m aecnn_utils export RUN'")
        self.path = path
        self.metadata: dict[str, Any] = {k: json.loads(v) for k, v in props.items()}

    def probs(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (float32 ``N x C``) of a normalised float32 ``N x 3 x S x S``
        batch."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def eager_probs(model_path: str | Path, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities of a run's checkpoint in PyTorch (CPU, full precision) on normalised
    ``N x 3 x S x S`` images, with the run's TTA and temperature, through
    :func:`predict_logits`."""
    trained = load_checkpoint(model_path)
    refuse_adabn(trained.deploy, "prediction on single cells")
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    batches = [(chunk, torch.zeros(len(chunk))) for chunk in x.split(batch_size)]
    logits, _ = predict_logits(trained.model, batches, torch.device("cpu"),  # type: ignore[arg-type]
                               tta=trained.deploy["tta"])
    return softmax(logits / trained.deploy["temperature"])


def parity(model_path: str | Path, onnx_path: str | Path, images: np.ndarray) -> float:
    """Largest absolute difference between the class probabilities of the run's checkpoint in
    PyTorch (:func:`eager_probs`) and of the ONNX model in ONNX Runtime on the same normalised
    ``N x 3 x S x S`` images."""
    eager = eager_probs(model_path, images)
    return float(np.abs(eager - OnnxClassifier(onnx_path).probs(images)).max())
