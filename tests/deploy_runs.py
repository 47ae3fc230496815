"""A finished run for the deployment tests (``test_export.py``, ``test_predict.py``).

The smoke runs of the other tests (one epoch, six cells per class) predict nearly the same
probability for every cell in eval mode: their BatchNorm running statistics have barely moved. A
parity test on such a model cannot fail, and an int8 model of it cannot be judged. So these
tests train on 24 synthetic cells per class for six epochs and keep the weights of the last
epoch (``last.pt``; the epoch the monitor picks can be an early, still flat one). Data and run go
under pytest's session folder, so that the two test modules share them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from aecnn_utils.data.synthetic import generate_all
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run


def deploy_data(base: Path) -> Path:
    """Synthetic datasets with 24 cells per class (written once per session)."""
    root = base / "deploy-synthetic"
    if not (root / "herlev").is_dir():
        generate_all(root, n_per_class=24, seed=0, field_size=(320, 240))
    return root


def deploy_run(base: Path) -> Path:
    """A finished run (binary, SIPaKMeD -> Herlev halves, 32 px, 10 epochs) whose ``best.pt``
    holds the last epoch's weights."""
    out = base / "deploy-final" / "run"
    if out.is_dir():
        return out
    config = profile_config("smoke", data_root=str(deploy_data(base)), test=("herlev",),
                            image_size=32, epochs=10, n_boot=50, num_workers=0)
    run_dir = train_run(config, base / "deploy-runs", progress=False).run_dir
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    ckpt["model"] = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    shutil.copytree(run_dir, out)
    torch.save(ckpt, out / "best.pt")
    return out


def rewrite_checkpoint(run_dir: Path, out_dir: Path, **inference: Any) -> Path:
    """A copy of ``run_dir`` whose ``best.pt`` records other ``inference`` options."""
    shutil.copytree(run_dir, out_dir, ignore=shutil.ignore_patterns("*.onnx"))
    ckpt = torch.load(out_dir / "best.pt", weights_only=True)
    ckpt["inference"] = {**ckpt.get("inference", {}), **inference}
    torch.save(ckpt, out_dir / "best.pt")
    return out_dir
