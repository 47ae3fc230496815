"""Published runs: a run this machine has not trained is taken from the published folder after
its checksums are checked; a changed file or other data is a clear message, never a reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aecnn_utils.data.synthetic import generate_all
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.published import (
    MANIFEST,
    PublishedMismatch,
    check_data,
    check_reproducible,
    publish_runs,
    read_manifest,
    sha256,
)

KIT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("published")
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=48, epochs=1,
                            n_boot=20, num_workers=0)
    run = train_run(config, tmp / "runs", progress=False, cache_dir=tmp / "cache")
    (run.run_dir / "evaluate").mkdir()  # what a command wrote into the folder later
    folder = tmp / "published" / "smoke"
    folder.mkdir(parents=True)
    publish_runs(tmp / "runs" / "smoke", folder, "smoke", synthetic_root)
    return {"config": config, "run": run, "folder": folder, "tmp": tmp}


def test_a_published_run_is_reused_without_training(published: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECNN_PUBLISHED_RUNS", str(published["folder"].parent))
    folder, run = published["folder"], published["run"]
    copied = folder / run.run_dir.name
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        ["best.pt", "config.yaml", "epochs.npz", "history.csv", "metrics.json", "norm.json",
         "predictions_test.csv", "predictions_val.csv", "splits.csv"])  # no last.pt
    manifest = read_manifest(folder)
    assert manifest["data"]["sipakmed"]["cells"] > 0
    assert manifest["runs"][run.run_dir.name]["files"]["epochs.npz"] == sha256(
        copied / "epochs.npz")
    again = train_run(published["config"], tmp_path / "runs", progress=False,
                      cache_dir=published["tmp"] / "cache")
    assert again.reused and again.run_dir.parent == tmp_path / "runs" / "smoke"
    assert again.metrics == json.loads((run.run_dir / "metrics.json").read_text())
    assert not (again.run_dir / "last.pt").exists()  # taken, not trained
    assert not list(folder.glob("*.adopting"))


def test_a_changed_published_file_is_refused(published: dict, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    broken = tmp_path / "published" / "smoke"
    shutil.copytree(published["folder"], broken)
    (run_name,) = read_manifest(broken)["runs"]
    with (broken / run_name / "history.csv").open("a") as f:
        f.write("9,0,0\n")
    monkeypatch.setenv("AECNN_PUBLISHED_RUNS", str(broken.parent))
    with pytest.raises(PublishedMismatch, match=r"changed history.csv.*--retrain"):
        train_run(published["config"], tmp_path / "runs", progress=False,
                  cache_dir=published["tmp"] / "cache")
    assert not (tmp_path / "runs" / "smoke" / run_name).exists()  # nothing half copied
    monkeypatch.setenv("AECNN_PUBLISHED_RUNS", "none")  # --retrain: trained here
    assert not train_run(published["config"], tmp_path / "runs", progress=False,
                         cache_dir=published["tmp"] / "cache").reused


def test_other_data_are_named_before_a_reproduction_starts(
        published: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECNN_PUBLISHED_RUNS", str(published["folder"].parent))
    assert check_data("smoke", published["config"].data_root) == []
    other = tmp_path / "other"
    generate_all(other, n_per_class=3, seed=1, field_size=(320, 240))
    lines = check_data("smoke", other)
    assert any(line.startswith("sipakmed: ") and "cells (published runs:" in line
               for line in lines)
    with pytest.raises(PublishedMismatch, match=r"(?s)your data differ.*--retrain"):
        check_reproducible("smoke", other)
    from aecnn_utils.__main__ import main

    assert main(["reproduce", "--profile", "smoke", "--data-root", str(other)]) == 2


def test_the_committed_manifest_names_every_published_file() -> None:
    """``published_runs/cpu/MANIFEST.json`` holds each committed file's sha256, and the data
    the runs were trained on: our copies of SIPaKMeD (JPEG crops) and of 412 Herlev cells."""
    folder = KIT / "published_runs" / "cpu"
    manifest = json.loads((folder / MANIFEST).read_text())
    folders = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert sorted(manifest["runs"]) == folders
    for name, entry in manifest["runs"].items():
        assert sorted(entry["files"]) == sorted(p.name for p in (folder / name).iterdir())
        for file, digest in entry["files"].items():
            assert sha256(folder / name / file) == digest, f"{name}/{file}"
    assert manifest["data"]["herlev"]["cells"] == 412
    assert manifest["data"]["sipakmed"]["cells"] == 4049
    assert manifest["data"]["sipakmed"]["file_types"] == [".jpg"]


def test_the_plan_says_what_each_notebook_will_train(published: dict, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs a notebook used (its run log) go into the manifest; before a reproduction,
    the plan says a notebook has nothing to train, or which of its runs a new kit version
    made stale, with their recorded time."""
    import shutil

    from aecnn_utils.training import config as config_module
    from aecnn_utils.training.published import training_plan, write_manifest

    folder = tmp_path / "published" / "smoke"
    shutil.copytree(published["folder"], folder)
    (run_name,) = read_manifest(folder)["runs"]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "03_training.runs.tsv").write_text(f"{run_name}\t1\t12.0\n")
    write_manifest(folder, "smoke", published["config"].data_root, logs)
    assert read_manifest(folder)["notebooks"] == {"03_training": [run_name]}
    monkeypatch.setenv("AECNN_PUBLISHED_RUNS", str(folder.parent))
    assert training_plan("smoke", ["03_training", "01_data"], tmp_path / "runs") == [
        "03_training: 1 runs, all published: nothing to train",
        "01_data: its runs are not recorded; it trains what it lacks"]
    monkeypatch.setattr(config_module, "__version__", "99.0")
    (line, _) = training_plan("smoke", ["03_training", "01_data"], tmp_path / "runs")
    assert line.startswith("03_training: 1 of 1 runs to train (stale or missing), about 0.0 h")
