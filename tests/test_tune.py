"""``tune``: the same learning-rate grid per model, chosen on the selection halves, recorded in
the profile's file, read back by ``profile_config`` and reused by later runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aecnn_utils.__main__ import main
from aecnn_utils.core.errors import TrainingDiverged
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.tune import TABLE2_METRICS, model_grid, tune
from aecnn_utils.reporting import plots
from aecnn_utils.reporting import tables as report
from aecnn_utils.training import config as C
from aecnn_utils.training import tuned
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run

SMALL = {"image_size": 32, "epochs": 2, "n_splits": 2, "test": ("herlev",), "n_boot": 20,
         "num_workers": 0}


def test_tune_chooses_per_split_records_the_majority_and_the_profile_reads_it(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {"data_root": str(synthetic_root), **SMALL}
    result = tune("smoke", ["aecnn"], [0.01, 0.05], tmp_path / "runs", progress=False,
                  seeds=[0, 1], **overrides)
    e = result.estimate("aecnn", "roc_auc")
    assert e.n_seeds == 2 and e.n_splits == 2 and sum(n for _, n in e.chosen) == 2
    names = ["lr 0.01", "lr 0.05"]
    # AECNN (the default layer table) and its other table as an arm of its own
    assert [a.name for a in result.grid.arms] == ["aecnn", "aecnn_base"]
    assert all(list(a.candidates) == names for a in result.grid.arms)
    runs = {c: result.runs["cross", "aecnn", c] for c in names}
    assert [r.config.lr for r in runs["lr 0.05"]] == [0.05, 0.05]
    assert runs["lr 0.05"][0].config.model_kwargs == {}
    assert result.runs["cross", "aecnn_base", "lr 0.05"][0].config.model_kwargs == {
        "layers": "base"}
    # per split: the rate whose seeds' mean selection loss is lowest (smoke monitors val_loss)
    for j, chosen in enumerate(result.scores["cross", "aecnn"].chosen):
        loss = {c: np.mean([r.metrics["splits"]["per_split"][j]["selection_value"]
                            for r in rs]) for c, rs in runs.items()}
        assert chosen == min(loss, key=loss.get)
    recorded = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())
    assert "aecnn_base" not in recorded  # `train` builds the default table
    lr = float(e.chosen[0][0].rsplit(" ", 1)[1])
    assert recorded["aecnn"]["lr"] == lr
    assert sum(recorded["aecnn"]["splits_chose"].values()) == 2
    assert recorded["aecnn"]["nested_auc"] == pytest.approx(e.value, abs=1e-6)
    config = profile_config("smoke", model="aecnn", **overrides)
    assert config.lr == lr  # `train` reads the record ...
    grid = model_grid("smoke", ["aecnn"], [0.01, 0.05])
    # ... and the grids don't
    assert grid.config(grid.arms[0], "lr 0.01", "cross", **overrides).lr == 0.01
    assert profile_config("smoke", model="resnet50", **overrides).lr == 0.05  # untuned
    assert profile_config("smoke", model="aecnn", lr=0.3, **overrides).lr == 0.3  # explicit
    # the run at the recorded rate is the profile's run: reused, not trained again
    again = train_run(config, tmp_path / "runs", progress=False)
    assert again.reused and again.run_dir == runs[f"lr {lr:g}"][0].run_dir
    (top, _), *_ = e.chosen
    assert result.chosen_runs()["aecnn"] == runs[top]
    table = report.grid_table2(result)
    assert table.loc[0, "AUC (ours)"] == W.cell(e)
    assert table.loc[0, "AUC (paper)"] == "0.986"
    numeric = report.grid_numeric(result)  # Fig. 2's numbers, from the same records
    assert numeric.loc[0, "roc_auc"] == e.value and numeric.loc[0, "f1_paper"] == 97.02
    f1 = result.estimate("aecnn", "f1")
    assert numeric.loc[0, "f1_low"] == pytest.approx(100 * f1.low)
    assert plots.plot_f1_bars(numeric).axes


def test_tune_cli_dry_run_and_bad_grid(synthetic_root: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    assert main(["tune", "--profile", "smoke", "--models", "mobilenet_v3_small", "--lrs",
                 "0.01", "--runs-dir", str(tmp_path)]) == 2
    assert "at least 2 learning rates" in capsys.readouterr().err
    args = ["tune", "--profile", "smoke", "--models", "aecnn", "mobilenet_v3_small", "--lrs",
            "0.01", "0.03", "--runs-dir", str(tmp_path), "--data-root", str(synthetic_root),
            "--dry-run", "--out", str(tmp_path / "out"),
            "--set", *(f"{k}={v}" for k, v in SMALL.items() if k != "test"), "test=[herlev]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Table 2 regenerated by aecnn-kit" in out and "family of 6" in out
    assert "AECNN vs MobileNetV3-Small, AUC:" in out
    assert "AECNN vs AECNN, base layer table, AUC:" in out
    assert not (tmp_path / "profiles").exists()  # a dry run records nothing
    records = pd.read_csv(tmp_path / "out" / "table2.csv")
    assert set(records["arm"]) == {"aecnn", "aecnn_base", "mobilenet_v3_small"}
    comparisons = pd.read_csv(tmp_path / "out" / "table2_comparisons.csv")
    assert len(comparisons) == 6 and set(comparisons["family"]) == {6}
    assert "MobileNetV3-Small" in (tmp_path / "out" / "table2.md").read_text()


def test_local_imagenet_weights_add_a_separate_row(synthetic_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torchvision.models import mobilenet_v3_small

    from aecnn_utils.models import pretrained_weights
    from aecnn_utils.reporting import tables as report

    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    (tmp_path / "weights").mkdir()
    torch.save(mobilenet_v3_small(weights=None).state_dict(),  # stands in for ImageNet's file
               tmp_path / "weights" / "mobilenet_v3_small.pth")
    monkeypatch.setenv("AECNN_WEIGHTS_DIR", str(tmp_path / "weights"))
    found = pretrained_weights()
    assert list(found) == ["mobilenet_v3_small"]
    overrides = {"data_root": str(synthetic_root), **SMALL}
    grid = model_grid("smoke", ["mobilenet_v3_small"], [0.01, 0.05], pretrained=found)
    runs = G.run_grid(grid, tmp_path / "runs", progress=False, **overrides)
    assert [a.name for a in grid.arms] == ["mobilenet_v3_small", "mobilenet_v3_small+imagenet"]
    (started,) = runs["cross", "mobilenet_v3_small+imagenet", "lr 0.01"]
    assert started.config.model_kwargs == {"weights_path": str(found["mobilenet_v3_small"])}
    assert started.run_dir != runs["cross", "mobilenet_v3_small", "lr 0.01"][0].run_dir
    result = G.score_grid(grid, runs, G.grid_data(grid, **overrides), TABLE2_METRICS)
    assert report.grid_table2(result)["Model"].tolist() == [
        "MobileNetV3-Small", "MobileNetV3-Small (ImageNet weights)"]


def test_a_diverging_rate_is_never_chosen_not_a_crash(synthetic_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    args = ["tune", "--profile", "smoke", "--models", "mobilenet_v3_small", "--lrs", "0.01",
            "1e12", "--runs-dir", str(tmp_path), "--data-root", str(synthetic_root),
            "--set", *(f"{k}={v}" for k, v in SMALL.items() if k != "test"), "test=[herlev]"]
    with pytest.warns(UserWarning, match="at lr 1e\\+12 diverged and is never chosen"):
        assert main(args) == 0
    recorded = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())
    entry = recorded["mobilenet_v3_small"]
    assert entry["lr"] == 0.01 and entry["splits_chose"] == {"lr 0.01": 2}
    with pytest.raises(TrainingDiverged, match="every candidate"), pytest.warns(UserWarning):
        tune("smoke", ["mobilenet_v3_small"], [1e12, 1e13], tmp_path, progress=False,
             data_root=str(synthetic_root), **SMALL)


def test_grids_never_read_the_tuned_record(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An arm that sets no learning rate trains at the profile's own, whatever the record
    says; ``train`` (profile_config) takes the record, and the recipe."""
    from aecnn_utils.experiments.study import study_grid

    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    tuned.update_tuned("smoke", {"aecnn": {"lr": 0.3}, "recipe": {"method": "input: grey",
                                                               "changes": {"input_mode": "grey"}}})
    assert profile_config("smoke").lr == 0.3 and profile_config("smoke").input_mode == "grey"
    grid = study_grid("smoke", ["plain"], reference=False)
    plain = grid.config(grid.arm("plain"), "", "cross")
    assert plain.lr == C.PROFILES["smoke"]["lr"] and plain.input_mode == "rgb"
