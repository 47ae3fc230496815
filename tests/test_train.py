"""The trainer: it learns, resumes exactly, stops on NaN, reuses finished runs, reports honestly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aecnn_utils.core.errors import RunInterrupted, TrainingDiverged
from aecnn_utils.data.errors import DatasetNotFoundError
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.synthetic import generate_all
from aecnn_utils.training.build import make_scheduler
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.runs import code_revision, evaluate_checkpoint, load_run


@pytest.fixture(scope="module")
def learnable_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough synthetic SIPaKMeD cells for a tiny model to learn in seconds."""
    root = tmp_path_factory.mktemp("learnable")
    generate_all(root, n_per_class=60, seed=1, field_size=(320, 240))
    return root


def _within(root: Path, **changes) -> object:
    # the validation loss, not the AUC: an AUC of 1.0 is reached (and the epoch chosen) before
    # the probabilities are calibrated at 0.5, which made the accuracy checks depend on the CPU
    base = dict(data_root=str(root), protocol="within", train=("sipakmed",), val_fraction=0.2,
                test_fraction=0.25, epochs=10, lr=0.05, monitor="val_loss", patience=20,
                n_boot=200, num_workers=0)
    return profile_config("smoke", **{**base, **changes})


@pytest.mark.parametrize(("total", "warmup", "schedule"), [
    (100, 0, "cosine"), (100, 10, "cosine"), (100, 1, "cosine"), (50, 5, "constant"),
    (30, 0, "constant")])
def test_lr_schedule_is_warmup_then_cosine_to_zero(total: int, warmup: int, schedule: str) -> None:
    """Step s: (s + 1) / W during the W warm-up steps, then 0.5 (1 + cos(pi p)) with p the
    share of the remaining steps done (``cosine``), or 1 (``constant``)."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = make_scheduler(optimizer, total, warmup, schedule)
    for step in range(total):
        if step < warmup:
            factor = (step + 1) / warmup
        elif schedule == "constant":
            factor = 1.0
        else:
            factor = 0.5 * (1 + np.cos(np.pi * (step - warmup) / (total - warmup)))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factor, abs=1e-12), step
        optimizer.step()
        scheduler.step()


@pytest.fixture(scope="module")
def learned(learnable_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 10-epoch smoke run shared by the tests below (each checks one thing)."""
    runs, cache = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("cache")
    result = train_run(_within(learnable_root), runs, cache_dir=cache, progress=False)
    return {"result": result, "runs": runs, "cache": cache}


def test_smoke_training_learns(learned: dict) -> None:
    result = learned["result"]
    h = result.history
    assert len(h) == 10
    assert h["train_loss"].iloc[-3:].mean() < h["train_loss"].iloc[:2].mean()
    m = result.metrics
    assert m["synthetic"] and "not the paper's numbers" in m["data"]
    assert m["test"]["roc_auc"] > 0.75 and m["test"]["balanced_accuracy"] > 0.6  # chance: 0.5


def test_intervals_and_validation_threshold(learned: dict) -> None:
    m = learned["result"].metrics
    for name, ci in m["test_ci"].items():
        if ci["value"] is not None:
            assert ci["low"] <= ci["value"] <= ci["high"], name
    t = m["threshold"]
    assert t["val"]["sensitivity"] >= 0.95 and 0 <= t["value"] <= 1
    assert set(t["test"]) >= {"sensitivity", "specificity"}


def test_run_folder_is_complete(learned: dict) -> None:
    result = learned["result"]
    files = {p.name for p in result.run_dir.iterdir()}
    assert files >= {"config.yaml", "norm.json", "splits.csv", "history.csv", "best.pt",
                     "last.pt", "metrics.json", "predictions_val.csv", "predictions_test.csv"}
    assert not [f for f in files if f.endswith(".tmp")]
    stored = json.loads((result.run_dir / "metrics.json").read_text())  # strict JSON
    # the code that trained: this checkout's commit (-dirty: uncommitted changes)
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent).stdout.strip()
    assert stored["code"] == code_revision()
    assert head[:7] in stored["code"] and "(source " in stored["code"]
    preds = pd.read_csv(result.run_dir / "predictions_test.csv")
    assert len(preds) == result.metrics["sizes"]["test"]
    np.testing.assert_allclose(preds[["prob_normal", "prob_abnormal"]].sum(axis=1), 1, atol=1e-5)


def test_best_checkpoint_reproduces_stored_predictions(learned: dict,
                                                       learnable_root: Path) -> None:
    result = learned["result"]
    preds = pd.read_csv(result.run_dir / "predictions_test.csv")
    data = prepare_data(_within(learnable_root), learned["cache"], progress=False)
    assert result.metrics["data_fingerprint"] == data.fingerprint
    assert result.run_dir.name == _within(learnable_root).run_id(data.fingerprint)
    y, probs = evaluate_checkpoint(result, data, "test", device="cpu")
    np.testing.assert_array_equal(y, preds["label"].to_numpy())
    np.testing.assert_allclose(probs[:, 1], preds["prob_abnormal"], atol=1e-5)
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        evaluate_checkpoint(result, data, "holdout")


def test_finished_run_is_reused_never_overwritten(learned: dict, learnable_root: Path) -> None:
    result, runs, cache = learned["result"], learned["runs"], learned["cache"]
    again = train_run(_within(learnable_root), runs, cache_dir=cache, progress=False)
    assert again.reused and again.metrics == load_run(result.run_dir).metrics
    with pytest.raises(FileExistsError, match="already finished"):
        train_run(_within(learnable_root), runs, cache_dir=cache, if_exists="error",
                  progress=False)


def test_a_last_pt_of_another_schedule_is_refused_not_resumed(
        learnable_root: Path, tmp_path: Path, cache_dir: Path) -> None:
    """A run interrupted under a kit whose schedule stored another state (LambdaLR, before
    SequentialLR) stops with a one-line error naming last.pt and the fix."""
    from aecnn_utils.core.errors import ConfigError

    config = _within(learnable_root, epochs=2, warmup_epochs=1, synthetic_per_class=24)
    data = prepare_data(config, cache_dir, progress=False)

    def stop_after_one(state: dict) -> None:
        if state["epoch"] == 1:
            raise RunInterrupted("simulated Ctrl-C")

    with pytest.raises(RunInterrupted):
        train_run(config, tmp_path, data=data, progress=False, callbacks=[stop_after_one])
    last = tmp_path / config.profile / config.run_id(data.fingerprint) / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["scheduler"] = {"base_lrs": [config.lr], "last_epoch": 3, "lr_lambdas": [None]}
    torch.save(ckpt, last)
    with pytest.raises(ConfigError, match=r"last\.pt holds an older kit's learning-rate schedule"):
        train_run(config, tmp_path, data=data, progress=False)


def test_resume_after_interruption_is_exact(learnable_root: Path, tmp_path: Path,
                                            cache_dir: Path) -> None:
    config = _within(learnable_root, epochs=4, synthetic_per_class=24)
    data = prepare_data(config, cache_dir, progress=False)
    straight = train_run(config, tmp_path / "a", data=data, progress=False)

    def stop_after_two(state: dict) -> None:
        if state["epoch"] == 2:
            raise RunInterrupted("simulated Ctrl-C")

    with pytest.raises(RunInterrupted):
        train_run(config, tmp_path / "b", data=data, progress=False, callbacks=[stop_after_two])
    run_b = tmp_path / "b" / config.profile / config.run_id(data.fingerprint)
    assert (run_b / "last.pt").is_file() and not (run_b / "metrics.json").exists()
    resumed = train_run(config, tmp_path / "b", data=data, progress=False)
    assert resumed.resumed_from_epoch == 2
    for name in ("last.pt", "best.pt"):
        a = torch.load(straight.run_dir / name, weights_only=True)["model"]
        b = torch.load(resumed.run_dir / name, weights_only=True)["model"]
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert straight.history.drop(columns=["train_seconds", "train_images_per_s"]).equals(
        resumed.history.drop(columns=["train_seconds", "train_images_per_s"]))
    # equal, NaN included (an undefined precision is NaN in both)
    assert json.dumps(resumed.metrics["test"]) == json.dumps(straight.metrics["test"])


def test_kill_between_checkpoint_and_history_loses_no_row(
        learnable_root: Path, tmp_path: Path, cache_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import aecnn_utils.training.engine as train_module

    config = _within(learnable_root, epochs=3, synthetic_per_class=24)
    data = prepare_data(config, cache_dir, progress=False)
    straight = train_run(config, tmp_path / "a", data=data, progress=False)
    real_write = train_module.write_history

    def killed_at_epoch_2(run_dir: Path, history: list, outputs: list) -> None:
        if len(history) == 2:
            raise KeyboardInterrupt  # after last.pt of epoch 2, before its history.csv
        real_write(run_dir, history, outputs)

    monkeypatch.setattr(train_module, "write_history", killed_at_epoch_2)
    with pytest.raises(RunInterrupted):
        train_run(config, tmp_path / "b", data=data, progress=False)
    run_b = tmp_path / "b" / config.profile / config.run_id(data.fingerprint)
    assert len(pd.read_csv(run_b / "history.csv")) == 1
    monkeypatch.setattr(train_module, "write_history", real_write)
    resumed = train_run(config, tmp_path / "b", data=data, progress=False)
    assert resumed.resumed_from_epoch == 2
    assert resumed.history["epoch"].tolist() == [1, 2, 3]
    assert np.load(run_b / "epochs.npz")["logits"].shape[0] == 3
    timing = ["train_seconds", "train_images_per_s"]
    assert straight.history.drop(columns=timing).equals(resumed.history.drop(columns=timing))


def test_changed_data_gets_a_new_run(tmp_path: Path, cache_dir: Path) -> None:
    generate_all(tmp_path / "data", n_per_class=6, seed=2, field_size=(320, 240))
    config = _within(tmp_path / "data", epochs=1)
    first = train_run(config, tmp_path / "runs", cache_dir=cache_dir, progress=False)
    sorted((tmp_path / "data" / "sipakmed").rglob("CROPPED/*.bmp"))[0].unlink()
    second = train_run(config, tmp_path / "runs", cache_dir=cache_dir, progress=False)
    assert not second.reused and second.run_dir != first.run_dir
    assert second.metrics["data_fingerprint"] != first.metrics["data_fingerprint"]
    assert train_run(config, tmp_path / "runs", cache_dir=cache_dir, progress=False).reused


def test_moved_data_finds_the_same_run(tmp_path: Path, cache_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cells under another path, or the same path written relative or absolute,
    reuse the finished run (the run id holds what the data is, not where it lies)."""
    generate_all(tmp_path / "data", n_per_class=6, seed=2, field_size=(320, 240))
    first = train_run(_within(tmp_path / "data", epochs=1), tmp_path / "runs",
                      cache_dir=cache_dir, progress=False)
    shutil.copytree(tmp_path / "data", tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    for root in ("moved", tmp_path / "moved"):
        again = train_run(_within(root, epochs=1), tmp_path / "runs", cache_dir=cache_dir,
                           progress=False)
        assert again.reused and again.run_dir == first.run_dir
        # the reused run reads its cells where they are now, not where they were trained
        assert again.config.data_root == str(root)
    shutil.rmtree(tmp_path / "data")
    from aecnn_utils.experiments.domain import run_features
    assert run_features(again, {"train": np.array([0, 1]), "pool": np.array([0])}).shape[0] == 3


def test_keyboard_interrupt_becomes_resumable(learnable_root: Path, tmp_path: Path,
                                              cache_dir: Path) -> None:
    config = _within(learnable_root, epochs=2, synthetic_per_class=24)

    def ctrl_c(state: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="interrupted after epoch 1; run the same config"):
        train_run(config, tmp_path, cache_dir=cache_dir, progress=False, callbacks=[ctrl_c])


class _NaNAfterFirstEpoch(nn.Module):
    """Wraps a model; its training outputs become NaN once it has been evaluated (epoch 2)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.evaluated = inner, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.evaluated |= not self.training
        out = self.inner(x)
        return out * float("nan") if self.training and self.evaluated else out


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(
        learnable_root: Path, tmp_path: Path, cache_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import aecnn_utils.training.build as train_module

    config = _within(learnable_root, epochs=3, synthetic_per_class=24, batch_size=16)
    real_build = train_module.build_model
    monkeypatch.setattr(train_module, "build_model",
                        lambda *a, **k: _NaNAfterFirstEpoch(real_build(*a, **k)))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 0.*last\.pt"):
        train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
    run_dir = next(p for p in (tmp_path / config.profile).iterdir() if p.name != ".locks")
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_data_prepared_for_another_config_is_refused(learnable_root: Path, tmp_path: Path,
                                                     cache_dir: Path) -> None:
    from aecnn_utils.training.config import ConfigError

    config = _within(learnable_root, epochs=1)
    data = prepare_data(config, cache_dir, progress=False)
    with pytest.raises(ConfigError, match="prepared for another config.*image_size"):
        train_run(config.replace(image_size=96), tmp_path, data=data, progress=False)


def test_missing_dataset_in_data_root(tmp_path: Path, learnable_root: Path) -> None:
    (tmp_path / "sipakmed").symlink_to(learnable_root / "sipakmed")
    with pytest.raises(DatasetNotFoundError, match="'herlev' is not available"):
        prepare_data(profile_config("smoke", data_root=str(tmp_path)), progress=False)


@pytest.mark.real_data
def test_cpu_protocol_data_on_real_cells(real_root: Path, cache_dir: Path) -> None:
    data = prepare_data(profile_config("cpu", data_root=str(real_root), image_size=32),
                        cache_dir, progress=False)
    herlev = len(scan_dataset("herlev", real_root / "herlev"))  # 412 here, 917 in full
    sizes = data.splits.sizes()
    assert sizes["train"] == 4049 and sizes["val"] + sizes["test"] == herlev
    assert abs(sizes["val"] - sizes["test"]) < 0.15 * herlev  # halves, by slide
    assert not data.source.synthetic
    assert data.train_counts.tolist() == [2411, 1638]
    assert not set(data.splits.val["patient_or_slide"]) & set(data.splits.test["patient_or_slide"])


def test_a_run_folder_copied_with_its_checkpoint_only_loads(learned: dict, tmp_path: Path) -> None:
    """config.yaml, best.pt and metrics.json are a finished run (export, evaluate, predict);
    its history is empty when history.csv was not copied."""
    source = learned["result"].run_dir
    copy = tmp_path / source.name
    copy.mkdir()
    for name in ("config.yaml", "best.pt", "metrics.json"):
        shutil.copy(source / name, copy / name)
    run = load_run(copy)
    assert run.history.empty and run.metrics == learned["result"].metrics
    calibration = learned["result"].metrics["calibration"]
    assert run.temperature == calibration["temperature"]
    assert run.threshold == calibration["threshold_calibrated"]  # the calibrated scale
