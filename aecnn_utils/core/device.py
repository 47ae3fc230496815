"""Device auto-detection: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/None into the best available device; an explicit ``cuda``/``mps``
    request that is not available here is a ValueError."""
    mps = getattr(torch.backends, "mps", None)
    available = {"cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available()}
    if device is None or str(device) == "auto":
        return torch.device(next((k for k, ok in available.items() if ok), "cpu"))
    dev = torch.device(device)
    if not available.get(dev.type, True):
        raise ValueError(f"device {device!r} requested but {dev.type.upper()} is not available "
                         "here; use device='auto' or 'cpu'")
    return dev


def environment_summary(device: str | torch.device | None = "auto") -> dict[str, str]:
    """Versions and hardware a result was produced with (for notebooks and run reports)."""
    import os
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    dev = resolve_device(device)
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu cores": str(os.cpu_count()), "device": str(dev),
            "torch threads": str(torch.get_num_threads())}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    for package in ("torch", "torchvision", "albumentations", "opencv-python-headless",
                    "scikit-learn", "numpy", "pandas", "aecnn-kit"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    return info
