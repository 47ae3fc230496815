"""Repeated selection/report splits from one training equal separate runs on each split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.scoring import select_epoch, split_halves, val_metrics


def test_select_epoch_replays_early_stopping() -> None:
    assert select_epoch([0.5, 0.7, 0.6, 0.8], "max", patience=5) == 4
    # patience 1: stops after epoch 3 (no gain), never sees epoch 4
    assert select_epoch([0.5, 0.7, 0.6, 0.8], "max", patience=1) == 2
    assert select_epoch([0.9, 0.7, 0.7, 0.3], "min", patience=1) == 2  # a tie does not improve
    assert select_epoch([0.9, 0.7, 0.7, 0.3], "min", patience=2) == 4
    assert select_epoch([float("nan"), 0.4], "max", patience=3) == 1  # as the trainer does


@pytest.mark.parametrize("monitor", ["val_auc", "val_loss"])
def test_repeated_splits_equal_separate_runs(monitor: str, synthetic_root: Path, tmp_path: Path,
                                             cache_dir: Path) -> None:
    base = dict(data_root=str(synthetic_root), test=("herlev",), image_size=32, epochs=4,
                patience=1, monitor=monitor, n_boot=50, num_workers=0, lr=0.02)
    once = train_run(profile_config("smoke", n_splits=3, **base), tmp_path, cache_dir=cache_dir,
                     progress=False)
    per_split = once.metrics["splits"]["per_split"]
    assert [s["split_seed"] for s in per_split] == [0, 1, 2]
    assert once.metrics["epochs_run"] == 4  # no early stopping while splits are pending
    assert once.metrics["best_epoch"] == per_split[0]["best_epoch"]  # split 0 is the run's own
    assert once.metrics["test"]["roc_auc"] == per_split[0]["test"]["roc_auc"]
    for k in (0, 2):
        config = profile_config("smoke", split_seed=k, **base)
        separate = train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
        m = separate.metrics
        assert per_split[k]["best_epoch"] == m["best_epoch"]
        assert per_split[k]["threshold"] == m["threshold"]["value"]
        for name, value in per_split[k]["test"].items():
            np.testing.assert_equal(value, m["test"][name], err_msg=name)
        for name, value in per_split[k]["test_at_threshold"].items():
            np.testing.assert_equal(value, m["threshold"]["test"][name], err_msg=name)
        # the halves are the ones the data preparation draws for that split seed
        data = prepare_data(config, cache_dir, progress=False)
        val_idx, test_idx = split_halves(config, data.frame("pool"), k)
        np.testing.assert_array_equal(np.sort(val_idx), data.index["val"])
        np.testing.assert_array_equal(np.sort(test_idx), data.index["test"])


def test_intervals_resample_slides(synthetic_root: Path, tmp_path: Path,
                                   cache_dir: Path) -> None:
    config = profile_config("smoke", data_root=str(synthetic_root), test=("herlev",),
                            image_size=32, epochs=1, n_boot=200, num_workers=0)
    m = train_run(config, tmp_path, cache_dir=cache_dir, progress=False).metrics
    assert m["ci_unit"] == "patient_or_slide"
    assert {"sens_at_spec95", "spec_at_sens90", "balanced_accuracy"} <= set(m["test_ci"])
    from aecnn_utils.evaluation import metrics as M
    from aecnn_utils.training.runs import load_run

    preds = __import__("pandas").read_csv(load_run(next(
        p for p in (tmp_path / "smoke").iterdir() if not p.name.startswith(".")))
                                          .run_dir / "predictions_test.csv")
    probs = preds[["prob_normal", "prob_abnormal"]].to_numpy()
    grouped = M.bootstrap_ci(preds["label"], probs, n_boot=200, seed=0,
                             groups=preds["patient_or_slide"])
    assert m["test_ci"]["roc_auc"]["low"] == pytest.approx(grouped["roc_auc"]["low"])


def test_finished_runs_are_rescored_from_their_outputs(synthetic_root: Path, tmp_path: Path,
                                                       cache_dir: Path) -> None:
    import json

    from aecnn_utils.training.config import ConfigError
    from aecnn_utils.training.engine import EVALUATION_VERSION

    config = profile_config("smoke", data_root=str(synthetic_root), test=("herlev",),
                            image_size=32, epochs=2, n_boot=20, num_workers=0)
    first = train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
    path = first.run_dir / "metrics.json"
    old = {k: v for k, v in first.metrics.items()
           if k not in ("evaluation_version", "test_seen", "ci_unit")}  # an older evaluation
    path.write_text(json.dumps(old))
    again = train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
    assert again.reused and again.metrics["evaluation_version"] == EVALUATION_VERSION
    np.testing.assert_equal(again.metrics["test_seen"], first.metrics["test_seen"])
    assert json.loads(path.read_text())["test"]["roc_auc"] == first.metrics["test"]["roc_auc"]
    path.write_text(json.dumps({**old, "best_epoch": 3 - first.metrics["best_epoch"]}))
    with pytest.raises(ConfigError, match="train it again"):
        train_run(config, tmp_path, cache_dir=cache_dir, progress=False)


class _DeviceRecorder(nn.Module):
    """A loss whose class weights live on another device (``meta`` stands in for a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(2, device="meta"))
        self.seen: list[tuple[str, str]] = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.seen.append((logits.device.type, target.device.type))
        return torch.tensor(0.25)


def test_the_validation_loss_runs_on_the_loss_device() -> None:
    """The trainer's loss holds its class weights on the model's device (a GPU): the epoch's
    validation logits, gathered on the CPU, must follow them there (found on an H200)."""
    logits = np.array([[2.0, -1.0], [0.0, 1.0], [1.0, 0.5]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    loss = _DeviceRecorder()
    assert val_metrics(logits, labels, loss)["val_loss"] == 0.25
    assert loss.seen == [("meta", "meta")]
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]))
    expected = float(weighted(torch.from_numpy(logits), torch.from_numpy(labels)))
    assert val_metrics(logits, labels, weighted)["val_loss"] == pytest.approx(expected)


def test_split_halves_are_drawn_once_per_cells_and_seed(synthetic_root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from aecnn_utils.training import scoring as evaluation

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=32,
                            test=("herlev",), n_splits=2)
    pool = prepare_data(config, progress=False).frame("pool")
    draws = []
    drawn = evaluation.grouped_split
    monkeypatch.setattr(evaluation, "grouped_split",
                        lambda *a, **k: draws.append(a[2]) or drawn(*a, **k))
    monkeypatch.setattr(evaluation, "_HALVES", {})
    first = split_halves(config, pool, 7)
    first[0][:] = -1  # a caller changing its copy changes nothing kept
    again = split_halves(config, pool, 7)
    assert draws == [7] and (again[0] >= 0).all()
    assert set(again[0]).isdisjoint(again[1]) and len(again[0]) + len(again[1]) == len(pool)
    split_halves(config, pool.iloc[::-1].reset_index(drop=True), 7)  # other cells: drawn
    split_halves(config, pool, 8)
    assert draws == [7, 7, 8]
