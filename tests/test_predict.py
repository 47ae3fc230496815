"""``python -m aecnn_utils predict``: cell images classified by a run, checkpoint or ONNX model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.data.cache import cache_images, transformed_cache
from aecnn_utils.data.errors import DataWarning
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.transforms import InputPrep, NormStats, build_eval_transform
from aecnn_utils.deploy.evaluate import evaluate_run
from aecnn_utils.deploy.export import export_onnx
from aecnn_utils.deploy.predict import Preprocess, find_images
from aecnn_utils.evaluation.calibration import apply_temperature, log_probs

from .deploy_runs import deploy_data, deploy_run, rewrite_checkpoint

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy_data(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run whose outputs depend on its input (see ``deploy_runs``)."""
    return deploy_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def onnx_path(run_dir: Path) -> Path:
    path = run_dir / "model.onnx"
    return path if path.is_file() else export_onnx(run_dir)


@pytest.fixture
def cells(data_root: Path, tmp_path: Path) -> Path:
    """Twelve cells in nested folders, beside files that are not cells."""
    files = find_images([data_root / "herlev"])[::14]
    for k, src in enumerate(files):
        sub = tmp_path / "cells" / ("a" if k % 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, sub / src.name)
    (tmp_path / "cells" / "notes.txt").write_text("not a cell")
    (tmp_path / "cells" / ".hidden").mkdir()
    shutil.copy(files[0], tmp_path / "cells" / ".hidden" / "x.bmp")
    return tmp_path / "cells"


def _predict(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[pd.DataFrame, str]:
    out = Path(argv[argv.index("--out") + 1])
    assert main(["predict", *argv, "--no-progress"]) == 0
    return pd.read_csv(out, keep_default_na=False, na_values=[""]), capsys.readouterr().out


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_run_checkpoint_and_onnx_give_the_same_rows(run_dir: Path, onnx_path: Path, cells: Path,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    tables = {}
    for name, model in (("run", run_dir), ("checkpoint", run_dir / "best.pt"),
                        ("onnx", onnx_path)):
        out = tmp_path / f"{name}.csv"
        tables[name], printed = _predict([str(model), str(cells), "--out", str(out),
                                          "--batch-size", "5"], capsys)
        assert printed.count("\n") == 1 and "12 cells classified" in printed
        assert str(out) in printed
    run = tables["run"]
    # the run's threshold on its temperature-scaled (calibrated) probabilities
    calibration = json.loads((run_dir / "metrics.json").read_text())["calibration"]
    threshold = calibration["threshold_calibrated"]
    assert list(run.columns) == ["path", "class", "probability", "prob_normal", "prob_abnormal",
                                 "threshold", "most_probable", "temperature", "error"]
    assert (run["temperature"] == calibration["temperature"]).all()
    assert len(run) == 12 and run["error"].isna().all()
    assert {Path(p).parent.name for p in run["path"]} == {"a", "c"}  # recursed, hidden left out
    probs = run[["prob_normal", "prob_abnormal"]].to_numpy()
    raw = apply_temperature(log_probs(probs), 1 / calibration["temperature"])  # as trained
    assert raw[:, 1].std() > 0.01, "the test model must depend on its input"
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    most = np.where(probs[:, 1] > probs[:, 0], "abnormal", "normal")
    assert (run["most_probable"] == most).all()
    assert (run["threshold"] == threshold).all()
    clear = np.abs(probs[:, 1] - threshold) > TOLERANCE
    expected = np.where(probs[:, 1] >= threshold, "abnormal", "normal")
    assert (run["class"] == expected)[clear].all()  # one answer: the decision at the threshold
    answered = np.where(run["class"] == "abnormal", probs[:, 1], probs[:, 0])
    np.testing.assert_allclose(run["probability"], answered)  # the answer's own probability
    for name in ("checkpoint", "onnx"):
        other = tables[name]
        assert (other["path"] == run["path"]).all()
        diff = np.abs(other[["prob_normal", "prob_abnormal"]].to_numpy() - probs).max()
        assert diff < TOLERANCE, f"{name} vs run folder: max |dp| = {diff:.2e}"


def test_predictions_match_the_runs_evaluation(run_dir: Path, onnx_path: Path, data_root: Path,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """The same cells scored by ``evaluate`` (decoded into the image cache) and ``predict``
    (decoded from their files): the same probabilities."""
    evaluate_run(run_dir, "herlev", data_root / "herlev", tmp_path / "eval", n_boot=20,
                 cache_dir=tmp_path / "cache", progress=False)
    evaluated = pd.read_csv(tmp_path / "eval" / "predictions.csv").set_index("path")
    for model in (run_dir, onnx_path):
        table, _ = _predict([str(model), str(data_root / "herlev"), "--out",
                             str(tmp_path / "p.csv")], capsys)
        assert len(table) == len(evaluated)  # Herlev's masks (*-d.bmp) are not cells
        names = table["path"].map(lambda p: Path(p).name)
        expected = evaluated.loc[names, ["prob_normal", "prob_abnormal"]].to_numpy()
        diff = np.abs(table[["prob_normal", "prob_abnormal"]].to_numpy() - expected).max()
        assert diff < TOLERANCE, f"predict ({model.name}) vs evaluate: max |dp| = {diff:.2e}"


@pytest.mark.parametrize(("resize_mode", "input_mode", "stain_norm"),
                         [("pad", "rgb", "none"), ("stretch", "grey", "none"),
                          ("cell", "haematoxylin", "none"), ("nucleus", "rgb", "reinhard")])
def test_files_are_prepared_as_the_cache_prepares_them(data_root: Path, tmp_path: Path,
                                                       resize_mode: str, input_mode: str,
                                                       stain_norm: str) -> None:
    """Decode, resize mode, stain normalisation, input mode, normalisation: a file through
    ``Preprocess`` equals the trainer's path (image cache, stain-normalised cache, eval
    transform)."""
    frame = scan_dataset("herlev", data_root / "herlev").iloc[::30]
    cached = cache_images(frame, 32, tmp_path, resize_mode=resize_mode, progress=False)
    prep = InputPrep.fit(input_mode, stain_norm, cached.array())
    if stain_norm != "none":
        cached = transformed_cache(cached, prep.normalise_stain, "test", progress=False)
    norm = NormStats((0.7, 0.6, 0.75), (0.2, 0.25, 0.2))
    transform = build_eval_transform(32, norm, prep.mode_only)
    expected = np.stack([transform(image=np.asarray(im))["image"].numpy()
                         for im in cached.array()])
    prepare = Preprocess({"image_size": 32, "resize_mode": resize_mode, "input": prep.to_dict(),
                          "norm": {"mean": list(norm.mean), "std": list(norm.std)}})
    got = np.stack([prepare.load(Path(p)) for p in cached.frame["path"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_corrupt_image_stops_or_is_skipped(onnx_path: Path, cells: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    bad = cells / "a" / "x.png"
    bad.write_bytes(b"\x89PNG not really" * 20)
    out = tmp_path / "out.csv"
    err = _one_line_error(["predict", str(onnx_path), str(cells), "--out", str(out)], capsys)
    assert str(bad) in err and "--on-error warn" in err
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    with pytest.warns(DataWarning, match="x.png"):
        table, printed = _predict([str(onnx_path), str(cells), "--out", str(out),
                                   "--on-error", "warn"], capsys)
    assert len(table) == 13 and "12 cells classified" in printed and "1 unreadable" in printed
    row = table[table["path"] == str(bad)].iloc[0]
    assert "cannot read" in row["error"] and pd.isna(row["class"])
    assert pd.isna(row["prob_abnormal"]) and pd.isna(row["most_probable"])
    good = table[table["path"] != str(bad)]
    assert good["error"].isna().all() and good["class"].notna().all()


def test_bad_inputs_are_one_line_errors(run_dir: Path, onnx_path: Path, cells: Path,
                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = ["--out", str(tmp_path / "p.csv")]
    err = _one_line_error(["predict", str(run_dir), str(tmp_path / "missing.bmp"), *out], capsys)
    assert "missing.bmp does not exist" in err
    err = _one_line_error(["predict", str(tmp_path / "nope"), str(cells), *out], capsys)
    assert "does not exist" in err and ".onnx" in err
    err = _one_line_error(["predict", str(cells / "notes.txt"), str(cells), *out], capsys)
    assert "is not a model" in err
    err = _one_line_error(["predict", str(cells), str(cells), *out], capsys)
    assert "not a finished run folder" in err
    err = _one_line_error(["predict", str(run_dir), str(cells / "notes.txt"), *out], capsys)
    assert "is not an image file" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error(["predict", str(run_dir), str(tmp_path / "empty"), *out], capsys)
    assert "no image files" in err
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    err = _one_line_error(["predict", str(tmp_path / "junk.onnx"), str(cells), *out], capsys)
    assert "not a readable ONNX model" in err
    foreign = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(foreign, tmp_path / "foreign.onnx")
    err = _one_line_error(["predict", str(tmp_path / "foreign.onnx"), str(cells), *out], capsys)
    assert "not exported by aecnn-kit" in err
    adabn = rewrite_checkpoint(run_dir, tmp_path / "adabn", adapt_bn=True)
    err = _one_line_error(["predict", str(adabn), str(cells), *out], capsys)
    assert "AdaBN" in err
    err = _one_line_error(["predict", str(run_dir), str(cells), *out, "--batch-size", "0"],
                          capsys)
    assert "batch size" in err
    assert not (tmp_path / "p.csv").exists()


def test_a_row_gives_one_answer_and_names_the_other() -> None:
    """Between the run's threshold and 0.5 the answer is the decision at the threshold, with
    its own probability; the most probable class is kept under its own name."""
    from aecnn_utils.deploy.predict import predictions_table

    probs = np.array([[0.6, 0.4], [0.8, 0.2], [0.1, 0.9]])
    table = predictions_table([Path(f"{i}.png") for i in range(4)], probs,
                              ["", "", "", "cannot read 3.png"],
                              {"class_names": ["normal", "abnormal"], "threshold": 0.3})
    assert table["class"].tolist() == ["abnormal", "normal", "abnormal", ""]
    np.testing.assert_allclose(table["probability"][:3], [0.4, 0.8, 0.9])
    assert table["most_probable"].tolist() == ["normal", "normal", "abnormal", ""]
    three = predictions_table([Path("a.png")], np.array([[0.2, 0.5, 0.3]]), [""],
                              {"class_names": ["a", "b", "c"], "threshold": None})
    assert three.loc[0, "class"] == three.loc[0, "most_probable"] == "b"
    assert three.loc[0, "probability"] == 0.5 and pd.isna(three.loc[0, "threshold"])


def test_the_readmes_first_example_runs_on_the_published_aecnn(synthetic_root: Path,
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The README's ``predict`` example, on a fresh clone: the published AECNN run classifies a
    folder of cells (here synthetic ones stand in for a lab's), and ``evaluate`` scores it."""
    import re
    import shlex

    kit = Path(__file__).resolve().parents[1]
    readme = (kit / "README.md").read_text(encoding="utf-8")
    (line,) = [m.group(0) for m in re.finditer(r"python -m aecnn_utils predict (\S+) .*", readme)
               if m.group(1).startswith("published_runs/")]
    argv = shlex.split(line.split("#")[0])[3:]
    run = kit / argv[1]
    assert (run / "best.pt").is_file(), f"{argv[1]} is published without its best.pt"
    monkeypatch.chdir(tmp_path)
    argv[1] = str(run)
    argv[2] = str(synthetic_root / "herlev")  # the cells
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / argv[argv.index("--out") + 1])
    assert len(table) >= len(scan_dataset("herlev", synthetic_root / "herlev"))
    assert set(table["class"]) <= {"normal", "abnormal"}
    out = tmp_path / "runs"
    monkeypatch.setenv("AECNN_RUNS_DIR", str(out))
    assert main(["evaluate", str(run), "--dataset", "herlev", "--root",
                 str(synthetic_root / "herlev")]) == 0
    assert list((out / "cpu" / run.name / "evaluate").iterdir())  # beside, under runs/
    assert not (run / "evaluate").exists()  # nothing written into the published folder
