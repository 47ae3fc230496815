"""The GPU path (CUDA, mixed precision, channels_last, pinned memory): skipped without a GPU.

Nothing else in the suite trains on a GPU, and the first GPU run found a bug no CPU test could
(the validation loss's class weights on the GPU, its inputs on the CPU). Run this file on a
machine with CUDA: ``pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aecnn_utils.__main__ import main
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.runs import evaluate_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = {"image_size": 32, "epochs": 2, "n_boot": 20, "num_workers": 2}


@pytest.mark.parametrize("model", ["aecnn", "mobilenet_v3_small"])
def test_training_and_evaluation_run_on_the_gpu(model: str, synthetic_root: Path,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    config = profile_config("smoke", model=model, data_root=str(synthetic_root), device="cuda",
                            amp=True, test=("herlev",), n_splits=2, **SMALL)
    run = train_run(config, tmp_path / "runs", progress=False)
    assert run.metrics["device"] == "cuda"
    assert all(torch.isfinite(torch.tensor(run.history["val_loss"].to_numpy())))
    # the stored outputs come back from the checkpoint, on the GPU as on the CPU
    data = prepare_data(config, progress=False)
    y_gpu, p_gpu = evaluate_checkpoint(run, data, "val", "cuda")
    y_cpu, p_cpu = evaluate_checkpoint(run, data, "val", "cpu")
    assert (y_gpu == y_cpu).all()
    assert abs(p_gpu - p_cpu).max() < 2e-2  # mixed precision rounding only
    out = tmp_path / "eval"
    assert main(["evaluate", str(run.run_dir), "--dataset", "herlev", "--root",
                 str(synthetic_root / "herlev"), "--out", str(out), "--device", "cuda"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_cells"] > 0
