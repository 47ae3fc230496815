"""Models: AECNN (the paper's method) and the reference baselines, behind one factory."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from aecnn_utils.models.aecnn import (
    AECNN,
    ATTENTION_MODES,
    LAYER_TABLES,
    AttentionFusion,
    ChannelAttention,
    DepthwiseSeparableConv,
    SpatialAttention,
    aecnn,
    attention_maps,
    layer_table,
)
from aecnn_utils.models.baselines import efficientnet_b3, mobilenet_v3_small, resnet50
from aecnn_utils.models.complexity import count_macs, count_params

MODELS: dict[str, Callable[..., nn.Module]] = {
    "aecnn": aecnn,
    "resnet50": resnet50,
    "efficientnet_b3": efficientnet_b3,
    "mobilenet_v3_small": mobilenet_v3_small,
}
#: Display names of the models, for tables and figures.
MODEL_LABELS: dict[str, str] = {"aecnn": "AECNN", "resnet50": "ResNet-50",
                                "efficientnet_b3": "EfficientNet-B3",
                                "mobilenet_v3_small": "MobileNetV3-Small"}


#: Version tag of the kit's checkpoints (``best.pt``, ``last.pt``).
CHECKPOINT_FORMAT = "aecnn-kit/checkpoint-v1"


def build_model(name: str, num_classes: int = 2, **kwargs) -> nn.Module:
    """Build a model by name: ``aecnn``, ``resnet50``, ``efficientnet_b3``,
    ``mobilenet_v3_small``. ``kwargs`` go to its factory (e.g. ``attention=``, ``layers=``,
    ``width_mult=`` for AECNN; ``weights_path=`` for the torchvision models)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, **kwargs)


def complexity_table(names: Iterable[str], input_size: int = 224,
                     num_classes: int = 2) -> pd.DataFrame:
    """One row per model: parameters (M) and GMACs at ``input_size``, plus ratios to AECNN."""
    rows = []
    for name in names:
        model = build_model(name, num_classes)
        rows.append({"model": name, "params_M": count_params(model) / 1e6,
                     "GMACs": count_macs(model, input_size) / 1e9,
                     "input": f"{input_size}x{input_size}"})
    table = pd.DataFrame(rows)
    if "aecnn" in set(table["model"]):
        ref = table.set_index("model").loc["aecnn"]
        table["params_x_aecnn"] = table["params_M"] / ref["params_M"]
        table["GMACs_x_aecnn"] = table["GMACs"] / ref["GMACs"]
    return table


#: Suffix of the result key of a model started from local ImageNet weights.
PRETRAINED = "+imagenet"


def model_label(key: str) -> str:
    """Display name of a result key: ``resnet50`` -> "ResNet-50", ``resnet50+imagenet`` ->
    "ResNet-50 (ImageNet weights)"."""
    base = key.removesuffix(PRETRAINED)
    label = MODEL_LABELS.get(base, base)
    return f"{label} (ImageNet weights)" if key.endswith(PRETRAINED) else label


def pretrained_weights(folder: str | Path | None = None) -> dict[str, Path]:
    """Local ImageNet weight files ``<model>.pth`` (or ``.pt``) of the torchvision models in
    ``folder`` (default ``$AECNN_WEIGHTS_DIR``); nothing is ever downloaded."""
    import os

    folder = folder or os.environ.get("AECNN_WEIGHTS_DIR", "")
    if not folder:
        return {}
    found = {}
    for name in MODELS:
        for suffix in (".pth", ".pt"):
            path = Path(folder) / f"{name}{suffix}"
            if name != "aecnn" and path.is_file():
                found[name] = path
                break
    return found


def model_defaults(name: str) -> dict[str, Any]:
    """The keyword arguments of model ``name`` that have defaults, with those defaults (for a
    factory that passes ``**kwargs`` on, those of the class it returns)."""
    factory = MODELS[name]
    signature = inspect.signature(factory)
    params = dict(signature.parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        returned = typing.get_type_hints(factory).get("return")
        if inspect.isclass(returned):
            params = {**inspect.signature(returned).parameters, **params}
    return {k: p.default for k, p in params.items()
            if p.default is not p.empty and k != "num_classes"}


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError``/``ValueError`` if ``build_model(name, **kwargs)`` would fail (the
    model is built once, on the CPU, only when ``kwargs`` is not empty)."""
    if kwargs:
        build_model(name, **kwargs)


def load_trained_model(path: str | Path, map_location: str | torch.device = "cpu"
                       ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a kit checkpoint; return it in eval mode and its metadata.

    A kit checkpoint is a dict with ``model_name``, ``num_classes``, ``model_kwargs`` and the
    ``model`` state dict (plus whatever the trainer records: normalisation, image size, class
    names, ...). The returned metadata holds every entry except the state dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    missing = [k for k in ("model_name", "num_classes", "model") if k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a kit checkpoint: it lacks {', '.join(missing)}")
    if ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} was written by another kit version (checkpoint format "
                         f"{ckpt['format']!r}; this kit reads {CHECKPOINT_FORMAT!r}): use that "
                         "version, or train the run again")
    model = build_model(ckpt["model_name"], ckpt["num_classes"], **ckpt.get("model_kwargs", {}))
    model.load_state_dict(ckpt["model"])
    meta = {k: v for k, v in ckpt.items()
            if k not in ("model", "optimizer", "scheduler", "scaler", "ema")}
    return model.eval(), meta


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm that follows a convolution inside a
    ``nn.Sequential`` (AECNN's :class:`~aecnn_utils.models.aecnn.ConvBNAct`, torchvision's
    ``Conv2dNormActivation``) folded into the convolution's weights and bias, in eval mode.

    The outputs equal the original's up to float rounding; one pass over each feature map less
    at inference. ``model`` itself is left as it is (training needs its BatchNorm)."""
    import copy
    import itertools

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return fused


__all__ = [
    "AECNN", "ATTENTION_MODES", "CHECKPOINT_FORMAT", "LAYER_TABLES", "MODELS", "MODEL_LABELS",
    "PRETRAINED", "AttentionFusion", "ChannelAttention", "DepthwiseSeparableConv",
    "SpatialAttention", "attention_maps", "build_model", "check_model_kwargs",
    "complexity_table", "count_macs", "count_params", "fuse_batchnorm", "layer_table",
    "load_trained_model", "model_label", "pretrained_weights",
]
