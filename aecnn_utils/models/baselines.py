"""The paper's reference models (section 5) and the lightweight reference a user would pick.

ResNet-50 and EfficientNet-B3 are the paper's baselines; MobileNetV3-Small is the lightweight
model a practitioner would otherwise reach for. All come from torchvision with ``weights=None``
(random initialisation, as nothing is downloaded at run time). ImageNet weights can be used when
a local weights file is given: the file's classifier is dropped and a new head of
``num_classes`` outputs is initialised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm


def _replace_head(model: nn.Module, name: str, num_classes: int) -> None:
    if name == "resnet50":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:  # efficientnet / mobilenet_v3: classifier is a Sequential ending in Linear
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)


_TORCHVISION: dict[str, Callable[..., nn.Module]] = {
    "resnet50": tvm.resnet50,
    "efficientnet_b3": tvm.efficientnet_b3,
    "mobilenet_v3_small": tvm.mobilenet_v3_small,
    "efficientnet_b0": tvm.efficientnet_b0,
}


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (or a checkpoint holding one under ``state_dict``/``model``) safely."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {path}. Download the ImageNet weights once on a machine "
            "with internet (torchvision's *_Weights.IMAGENET1K_V1.url) and pass the local file.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def torchvision_model(name: str, num_classes: int = 2, weights_path: str | Path | None = None,
                      **kwargs) -> nn.Module:
    """A torchvision architecture with a ``num_classes`` head; ImageNet weights from
    ``weights_path`` when given (the 1000-class head is replaced), random otherwise."""
    if name not in _TORCHVISION:
        raise ValueError(f"unknown torchvision model {name!r}; choose one of "
                         f"{', '.join(_TORCHVISION)}")
    if weights_path is None:
        return _TORCHVISION[name](weights=None, num_classes=num_classes, **kwargs)
    model = _TORCHVISION[name](weights=None, num_classes=1000, **kwargs)
    state = load_state_dict_file(weights_path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights_path} does not fit {name}: missing {list(missing)[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    _replace_head(model, name, num_classes)
    return model


def resnet50(num_classes: int = 2, weights_path: str | Path | None = None) -> nn.Module:
    """ResNet-50 (He et al. 2016), the paper's first baseline."""
    return torchvision_model("resnet50", num_classes, weights_path)


def efficientnet_b3(num_classes: int = 2, weights_path: str | Path | None = None) -> nn.Module:
    """EfficientNet-B3 (Tan & Le 2019), the paper's second baseline."""
    return torchvision_model("efficientnet_b3", num_classes, weights_path)


def mobilenet_v3_small(num_classes: int = 2,
                       weights_path: str | Path | None = None) -> nn.Module:
    """MobileNetV3-Small (Howard et al. 2019), the lightweight reference."""
    return torchvision_model("mobilenet_v3_small", num_classes, weights_path)
