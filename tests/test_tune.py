"""``tune``: the same learning-rate grid per model, chosen on the selection halves, recorded in
the profile's file, read back by ``profile_config`` and reused by later runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aecnn_utils import config as C
from aecnn_utils.__main__ import main
from aecnn_utils.config import profile_config
from aecnn_utils.train import TrainingDiverged, train_models, train_run
from aecnn_utils.tune import DIVERGED, selection_score, tune

SMALL = {"image_size": 32, "epochs": 2, "n_splits": 2, "test": ("herlev",), "n_boot": 20,
         "num_workers": 0}


def test_tune_records_the_best_rate_and_the_profile_reads_it(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "TUNED_DIR", tmp_path / "profiles")
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {"data_root": str(synthetic_root), **SMALL}
    table = tune("smoke", ["aecnn"], [0.01, 0.05], tmp_path / "runs", progress=False,
                 **overrides)
    assert list(table["lr"]) == [0.01, 0.05] and table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    best = table["score"].min() if C.MONITORS["val_loss"] == "min" else table["score"].max()
    assert chosen["score"] == best  # smoke monitors the validation loss: lowest wins
    recorded = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())
    assert recorded["aecnn"]["lr"] == chosen["lr"]
    assert recorded["aecnn"]["grid"] == {lr: pytest.approx(s) for lr, s in
                                         zip(table["lr"], table["score"], strict=True)}
    config = profile_config("smoke", model="aecnn", **overrides)
    assert config.lr == chosen["lr"]
    assert profile_config("smoke", model="resnet50", **overrides).lr == 0.05  # untuned
    assert profile_config("smoke", model="aecnn", lr=0.3, **overrides).lr == 0.3  # explicit
    # the chosen grid run is the profile's run: reused, not trained again
    again = train_run(config, tmp_path / "runs", progress=False)
    assert again.reused and again.run_dir.name == chosen["run_id"]
    assert selection_score(again.metrics) == pytest.approx(chosen["score"])
    # the notebooks' path: every model with its own tuned values, on shared data
    runs = train_models("smoke", ["aecnn", "mobilenet_v3_small"], tmp_path / "runs",
                        progress=False, **overrides)
    assert runs["aecnn"][0].run_dir == again.run_dir
    assert runs["mobilenet_v3_small"][0].config.lr == 0.05


def test_tune_cli_dry_run_and_bad_grid(synthetic_root: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(C, "TUNED_DIR", tmp_path / "profiles")
    assert main(["tune", "--profile", "smoke", "--models", "mobilenet_v3_small", "--lrs",
                 "0.01", "--runs-dir", str(tmp_path)]) == 2
    assert "at least 2 learning rates" in capsys.readouterr().err
    args = ["tune", "--profile", "smoke", "--models", "mobilenet_v3_small", "--lrs", "0.01",
            "0.03", "--runs-dir", str(tmp_path), "--data-root", str(synthetic_root),
            "--dry-run", "--set", *(f"{k}={v}" for k, v in SMALL.items() if k != "test"),
            "test=[herlev]"]
    assert main(args) == 0
    assert "mobilenet_v3_small" in capsys.readouterr().out
    assert not (tmp_path / "profiles").exists()  # a dry run records nothing


def test_local_imagenet_weights_add_a_separate_row(synthetic_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torchvision.models import mobilenet_v3_small

    from aecnn_utils import report
    from aecnn_utils.models import pretrained_weights

    monkeypatch.setattr(C, "TUNED_DIR", tmp_path / "profiles")
    (tmp_path / "weights").mkdir()
    torch.save(mobilenet_v3_small(weights=None).state_dict(),  # stands in for ImageNet's file
               tmp_path / "weights" / "mobilenet_v3_small.pth")
    monkeypatch.setenv("AECNN_WEIGHTS_DIR", str(tmp_path / "weights"))
    found = pretrained_weights()
    assert list(found) == ["mobilenet_v3_small"]
    overrides = {"data_root": str(synthetic_root), **SMALL}
    runs = train_models("smoke", ["mobilenet_v3_small"], tmp_path / "runs", progress=False,
                        pretrained=found, **overrides)
    assert list(runs) == ["mobilenet_v3_small", "mobilenet_v3_small+imagenet"]
    started = runs["mobilenet_v3_small+imagenet"][0]
    assert started.config.model_kwargs == {"weights_path": str(found["mobilenet_v3_small"])}
    assert started.run_dir != runs["mobilenet_v3_small"][0].run_dir
    table = report.table2(runs)
    assert list(table["model"]) == ["MobileNetV3-Small", "MobileNetV3-Small (ImageNet weights)"]


def test_a_diverging_rate_is_a_grid_result_not_a_crash(synthetic_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "TUNED_DIR", tmp_path / "profiles")
    args = ["tune", "--profile", "smoke", "--models", "mobilenet_v3_small", "--lrs", "0.01",
            "1e12", "--runs-dir", str(tmp_path), "--data-root", str(synthetic_root),
            "--set", *(f"{k}={v}" for k, v in SMALL.items() if k != "test"), "test=[herlev]"]
    with pytest.warns(UserWarning, match="at lr 1000000000000.0 diverged"):
        assert main(args) == 0
    recorded = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())
    entry = recorded["mobilenet_v3_small"]
    assert entry["lr"] == 0.01 and entry["grid"][1e12] == DIVERGED
    assert entry["device"] == {0.01: "cpu"}
    with pytest.raises(TrainingDiverged, match="every learning rate"), pytest.warns(UserWarning):
        tune("smoke", ["mobilenet_v3_small"], [1e12, 1e13], tmp_path, progress=False,
             data_root=str(synthetic_root), **SMALL)
