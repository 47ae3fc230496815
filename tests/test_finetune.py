"""Fine-tuning from a finished run and a lab's labelled cells: the config, the draw of labelled
cells, the ``adapt`` protocol, and ``python -m aecnn_utils finetune`` through to the files that
``evaluate``, ``predict`` and ``export`` then read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from aecnn_utils.__main__ import main
from aecnn_utils.data.errors import DatasetNotFoundError
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.splits import draw_cells, grouped_split
from aecnn_utils.data.synthetic import generate_dataset
from aecnn_utils.models import build_model
from aecnn_utils.training.config import ConfigError, RunConfig, profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.finetune import classifier_head, finetune_config, load_source
from aecnn_utils.training.prepare import make_splits, prepare_data

SMALL = {"image_size": 32, "n_boot": 20, "num_workers": 0}


@pytest.fixture(scope="module")
def source_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished SIPaKMeD -> Herlev run to start from."""
    config = profile_config("smoke", data_root=str(synthetic_root), test=("herlev",), epochs=2,
                            **SMALL)
    return train_run(config, tmp_path_factory.mktemp("runs"), progress=False).run_dir


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new lab's labelled folder: Herlev's layout, cells of other slides than ours."""
    return generate_dataset("herlev", tmp_path_factory.mktemp("lab") / "cells", n_per_class=8,
                            seed=7)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ----------------------------------------------------------------------------- config
def test_config_refuses_what_cannot_run() -> None:
    with pytest.raises(ConfigError, match="finetune='head' trains part of a network"):
        RunConfig(finetune="head")
    with pytest.raises(ConfigError, match="finetune='some' is not valid; choose one of: all"):
        RunConfig(finetune="some", init_from="runs/x")
    with pytest.raises(ConfigError, match="train_cells=50 draws labelled cells"):
        RunConfig(train_cells=50)
    with pytest.raises(ConfigError, match="the 'adapt' protocol trains on labelled cells"):
        RunConfig(protocol="adapt", train=("sipakmed",), val=("herlev",), test=("herlev",))
    with pytest.raises(ConfigError, match="roots='x' is not valid"):
        RunConfig(roots="x")
    with pytest.raises(ConfigError, match="roots='nowhere' is not valid; choose one of"):
        RunConfig(roots={"nowhere": "/tmp"})


def test_fingerprint_names_the_source_run_not_its_path() -> None:
    here = RunConfig(init_from="runs/cpu/aecnn_x_s0_12345678")
    there = RunConfig(init_from="/elsewhere/aecnn_x_s0_12345678/best.pt")
    assert here.fingerprint() == there.fingerprint() != RunConfig().fingerprint()
    assert RunConfig(roots={"herlev": "/a"}).fingerprint() == RunConfig().fingerprint()


# ----------------------------------------------------------------------------- labelled cells
def test_draw_cells_takes_whole_slides_near_each_class_share(synthetic_root: Path) -> None:
    herlev = scan_dataset("herlev", synthetic_root / "herlev")
    share = herlev["label"].mean()
    for n in (12, 20, 30):
        drawn = draw_cells(herlev, n, seed=3)
        assert len(drawn) <= n and len(drawn) >= n - 4
        assert set(drawn["label"]) == {0, 1}
        assert abs(drawn["label"].sum() - share * n) <= 2  # within its share, rounded up
        slides = set(drawn["patient_or_slide"])  # whole slides: every cell of each
        assert len(herlev[herlev["patient_or_slide"].isin(slides)]) == len(drawn)
        pd.testing.assert_frame_equal(drawn, draw_cells(herlev, n, seed=3))
    assert len(draw_cells(herlev, 0, seed=3)) == len(herlev)


def test_adapt_protocol_reports_on_the_cross_halves(synthetic_root: Path) -> None:
    frames = {name: scan_dataset(name, synthetic_root / name) for name in ("sipakmed", "herlev")}
    cross = make_splits(RunConfig(test=("herlev",), split_seed=2), frames)
    adapt = make_splits(RunConfig(protocol="adapt", train=("sipakmed", "herlev"),
                                  test=("herlev",), train_cells=20, split_seed=2), frames)
    key = ["path"]
    pd.testing.assert_frame_equal(adapt.test[key], cross.test[key])  # the same report half
    labelled = pd.concat([adapt.val, adapt.train[adapt.train["dataset"] == "herlev"]])
    assert len(labelled) <= 20 and set(labelled["path"]) <= set(cross.val["path"])
    assert (adapt.train["dataset"] == "sipakmed").sum() == len(frames["sipakmed"])  # joint
    _, selection = grouped_split(labelled.reset_index(drop=True), 0.25, 2)
    assert 0 < len(adapt.val) < len(labelled) and len(selection) > 0


# ----------------------------------------------------------------------------- the trainer
@pytest.mark.parametrize("mode", ["all", "head+bn", "head"])
def test_finetune_trains_what_it_says_and_keeps_the_source_input(
        mode: str, source_run: Path, lab: Path, tmp_path: Path) -> None:
    config = finetune_config(source_run, "herlev", lab, train=mode, epochs=2, **SMALL)
    run = train_run(config, tmp_path, progress=False)
    assert run.metrics["source_run"] == source_run.name
    ckpt = torch.load(run.best_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["source_run"] == source_run.name
    assert json.loads((run.run_dir / "norm.json").read_text()) == \
        json.loads((source_run / "norm.json").read_text())
    before, after = _weights(source_run / "best.pt"), ckpt["model"]
    model = build_model("aecnn", 2)
    head = {f"classifier.{k}" for k, _ in classifier_head(model).named_parameters()}
    bn = {f"{n}.{k}" for n, m in model.named_modules() if isinstance(m, _BatchNorm)
          for k in ("weight", "bias", "running_mean", "running_var")}
    moved = {k for k in before if before[k].dtype.is_floating_point
             and not torch.equal(before[k], after[k])}
    assert head & moved, "the head did not train"
    if mode == "all":
        assert moved - head - bn, "no convolution trained"
    else:
        assert not moved - head - bn, f"{mode} trained frozen weights: {sorted(moved)[:3]}"
        assert bool(moved & bn) == (mode == "head+bn")


def test_a_finished_finetune_is_reused_without_its_source_weights(
        source_run: Path, lab: Path, tmp_path: Path) -> None:
    """A published fine-tune (compact records, no checkpoints anywhere) is found again."""
    import shutil

    copy = tmp_path / "source" / source_run.name
    shutil.copytree(source_run, copy)
    config = finetune_config(copy, "herlev", lab, train="head", epochs=1, **SMALL)
    first = train_run(config, tmp_path / "runs", progress=False)
    for checkpoint in copy.glob("*.pt"):
        checkpoint.unlink()
    again = train_run(config, tmp_path / "runs", progress=False)
    assert again.reused and again.run_dir == first.run_dir
    with pytest.raises(FileNotFoundError):  # a new fine-tune does need them
        train_run(config.replace(epochs=2), tmp_path / "runs", progress=False)


def test_finetune_refuses_a_source_of_another_input(source_run: Path, lab: Path) -> None:
    with pytest.raises(ConfigError, match=r"was trained with image_size=32, this config has "
                                          r"image_size=64: a fine-tune keeps its source's"):
        load_source(finetune_config(source_run, "herlev", lab, image_size=64))
    with pytest.raises(FileNotFoundError, match="give a run folder"):
        finetune_config(source_run.parent / "missing", "herlev", lab)
    # the default layer table named or left out is the same model; the other one is not
    assert load_source(finetune_config(source_run, "herlev", lab,
                                       model_kwargs={"layers": "fast"})).run_dir == source_run
    with pytest.raises(ConfigError, match=r"this config has model_kwargs=\{'layers': 'base'\}"):
        load_source(finetune_config(source_run, "herlev", lab, model_kwargs={"layers": "base"}))


def test_roots_reads_a_lab_folder_and_names_a_missing_one(lab: Path, tmp_path: Path) -> None:
    config = RunConfig(protocol="within", train=("herlev",), roots={"herlev": str(lab)},
                       val_fraction=0.2, test_fraction=0.2, **SMALL)
    data = prepare_data(config, tmp_path / "cache", progress=False)
    assert data.source.datasets == {"herlev": lab} and data.source.synthetic
    with pytest.raises(DatasetNotFoundError, match="point roots.herlev"):
        prepare_data(config.replace(roots={"herlev": str(tmp_path / "no")}), progress=False)


# ----------------------------------------------------------------------------- the command
def test_finetune_command_end_to_end(source_run: Path, lab: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """CLI -> config -> trainer -> run folder; then evaluate, predict and export take it."""
    runs = tmp_path / "runs"
    assert main(["finetune", str(source_run), "--dataset", "herlev", "--root", str(lab),
                 "--cells", "40", "--train", "head+bn", "--runs-dir", str(runs),
                 "--set", "epochs=2", "image_size=32", "n_boot=20", "num_workers=0"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = [p for p in (runs / "smoke").iterdir() if not p.name.startswith(".")]
    assert f"{run_dir}: fine-tuned (head+bn) from {source_run.name}" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sum(metrics["sizes"].values()) <= 40 and metrics["source_run"] == source_run.name
    config = RunConfig.load(run_dir / "config.yaml")
    assert (config.finetune, config.train_cells, config.roots) == ("head+bn", 40,
                                                                   {"herlev": str(lab)})
    assert main(["evaluate", str(run_dir), "--dataset", "herlev", "--root", str(lab),
                 "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "metrics.json").is_file()
    images = sorted(p for p in lab.rglob("*.BMP") if not p.stem.endswith("-d"))[:3]
    assert main(["predict", str(run_dir), *map(str, images), "--out",
                 str(tmp_path / "p.csv"), "--no-progress"]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3
    pytest.importorskip("onnxruntime")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 0


def test_finetune_command_names_bad_labelled_folders(
        source_run: Path, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(root: Path, *extra: str) -> str:
        code = main(["finetune", str(source_run), "--dataset", "herlev", "--root", str(root),
                     "--runs-dir", str(tmp_path / "runs"), *extra])
        assert code == 2
        return capsys.readouterr().err

    assert "fine-tuning needs at least 10 labelled cells of every class" in run(
        lab, "--cells", "12")
    one_class = tmp_path / "abnormal_only"
    shutil.copytree(lab, one_class)
    for folder in ("normal_superficiel", "normal_intermediate", "normal_columnar"):
        shutil.rmtree(one_class / folder)
    assert "has no 'normal' cells" in run(one_class)
    (tmp_path / "empty").mkdir()
    assert "is not in the herlev layout" in run(tmp_path / "empty")  # no labels
    assert "herlev root not found" in run(tmp_path / "nowhere")


def test_finetune_command_on_real_cells(real_root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The cpu profile's SIPaKMeD run (small: 32 px, one epoch) fine-tuned on 100 real Herlev
    cells, as a lab with that folder would run it."""
    source = train_run(profile_config("cpu", data_root=str(real_root), epochs=1, n_splits=1,
                                      **SMALL), tmp_path / "runs", progress=False).run_dir
    assert main(["finetune", str(source / "best.pt"), "--dataset", "herlev", "--root",
                 str(real_root / "herlev"), "--cells", "100", "--runs-dir",
                 str(tmp_path / "runs"), "--set", "epochs=2", "n_boot=20"]) == 0
    assert "held-out cells of other slides: AUC 0." in capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs" / "cpu").glob("aecnn_within-herlev_*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["source_run"] == source.name and not metrics["synthetic"]
    assert 90 <= sum(metrics["sizes"].values()) <= 100
    assert not set(pd.read_csv(run_dir / "predictions_test.csv")["patient_or_slide"]) & set(
        pd.read_csv(run_dir / "predictions_val.csv")["patient_or_slide"])
