"""``python -m aecnn_utils export``: ONNX export, parity with PyTorch, int8 quantisation."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.deploy.export import (
    ONNX_FORMAT,
    OnnxClassifier,
    deployment_metadata,
    eager_probs,
    export_onnx,
    parity,
    read_metadata,
)
from aecnn_utils.deploy.predict import Preprocess, find_images
from aecnn_utils.deploy.quantize import calibration_images, quantize_int8
from aecnn_utils.models import load_trained_model

from .deploy_runs import deploy_data, deploy_run, rewrite_checkpoint

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run whose outputs depend on its input (see ``deploy_runs``)."""
    return deploy_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def exported(run_dir: Path) -> tuple[Path, Path, str]:
    """``export RUN --int8`` once: the float and int8 models and what the command printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(run_dir), "--int8", "--calibration", "48"]) == 0
    return run_dir / "model.onnx", run_dir / "model.int8.onnx", out.getvalue()


@pytest.fixture(scope="module")
def herlev_cells(exported: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> np.ndarray:
    """Synthetic Herlev cells, prepared from their files as ``predict`` prepares them."""
    prepare = Preprocess(read_metadata(exported[0]))
    root = deploy_data(tmp_path_factory.getbasetemp()) / "herlev"
    return np.stack([prepare.load(p) for p in find_images([root])[::3]])


def _meta(run_dir: Path) -> dict:
    return load_trained_model(run_dir / "best.pt")[1]


def test_onnx_gives_the_checkpoints_probabilities(exported: tuple[Path, Path, str],
                                                  run_dir: Path, herlev_cells: np.ndarray
                                                  ) -> None:
    onnx_path, _, printed = exported
    assert f"{onnx_path}: float32, max |probability difference| to PyTorch" in printed
    train_cells = calibration_images(run_dir, 24, seed=1)
    for images in (herlev_cells, train_cells):
        diff = parity(run_dir, onnx_path, images)
        assert diff < TOLERANCE, f"ONNX vs PyTorch: max |dp| = {diff:.2e}"
    probs = OnnxClassifier(onnx_path).probs(herlev_cells)
    assert probs.shape == (len(herlev_cells), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs[:, 1].std() > 1e-3, "the test model must depend on its input"


def test_dynamic_batch(exported: tuple[Path, Path, str], herlev_cells: np.ndarray) -> None:
    model = OnnxClassifier(exported[0], threads=1)
    whole = model.probs(herlev_cells)
    for n in (1, 5):
        part = model.probs(herlev_cells[:n])
        assert part.shape == (n, 2)
        np.testing.assert_allclose(part, whole[:n], atol=1e-6)
    graph_input = onnx.load(exported[0]).graph.input[0].type.tensor_type.shape.dim
    assert graph_input[0].dim_param and [d.dim_value for d in graph_input[1:]] == [3, 32, 32]


def test_metadata_round_trips(exported: tuple[Path, Path, str], run_dir: Path) -> None:
    meta = read_metadata(exported[0])
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    norm = json.loads((run_dir / "norm.json").read_text())
    assert meta["format"] == ONNX_FORMAT and meta["precision"] == "float32"
    # the run's calibration: its temperature, and its threshold on the calibrated scale
    assert meta["temperature"] == run_metrics["calibration"]["temperature"]
    assert meta["threshold"] == run_metrics["calibration"]["threshold_calibrated"]
    assert meta["threshold_uncalibrated"] == run_metrics["threshold"]["value"]
    assert meta["norm"]["mean"] == pytest.approx(norm["mean"])
    assert meta["norm"]["std"] == pytest.approx(norm["std"])
    assert meta["image_size"] == 32 and meta["resize_mode"] == "pad"
    assert meta["class_names"] == ["normal", "abnormal"]
    assert meta["input"] == {"mode": "rgb", "stain_norm": "none", "reference": {}}
    assert meta["run_id"] == run_metrics["run_id"] and meta["model_name"] == "aecnn"
    assert meta["model_kwargs"] == {} and meta["kit_version"] and meta["tta"] is False
    expected = deployment_metadata(run_dir, _meta(run_dir))
    assert {k: meta[k] for k in expected} == json.loads(json.dumps(expected))


def test_flip_tta_is_baked_into_the_graph(run_dir: Path, herlev_cells: np.ndarray,
                                          exported: tuple[Path, Path, str],
                                          tmp_path: Path) -> None:
    tta_run = rewrite_checkpoint(run_dir, tmp_path / "tta", tta=True)
    path = export_onnx(tta_run)
    assert read_metadata(path)["tta"] is True
    diff = parity(tta_run, path, herlev_cells)
    assert diff < TOLERANCE, f"ONNX with TTA vs PyTorch with TTA: max |dp| = {diff:.2e}"
    plain = OnnxClassifier(exported[0]).probs(herlev_cells)
    assert np.abs(OnnxClassifier(path).probs(herlev_cells) - plain).max() > 10 * TOLERANCE


def test_adabn_run_is_refused(run_dir: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    adabn = rewrite_checkpoint(run_dir, tmp_path / "adabn", adapt_bn=True)
    with pytest.raises(ValueError, match="AdaBN"):
        export_onnx(adabn)
    assert main(["export", str(adabn / "best.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "transductive" in err
    assert not list(adabn.glob("*.onnx")) and not list(adabn.glob(".*tmp"))


def test_int8_model_runs_keeps_metadata_and_stays_close(exported: tuple[Path, Path, str],
                                                        run_dir: Path, tmp_path: Path) -> None:
    fp32_path, int8_path, printed = exported
    assert f"{int8_path}: int8" in printed
    nodes = {node.op_type for node in onnx.load(int8_path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= nodes
    meta, meta32 = read_metadata(int8_path), read_metadata(fp32_path)
    assert meta["precision"] == "int8" and meta["quantization"]["format"] == "QDQ"
    assert {k: v for k, v in meta.items() if k not in ("precision", "quantization")} == \
        {k: v for k, v in meta32.items() if k != "precision"}
    # calibrated on half of the training cells, judged on the other half
    cells = calibration_images(run_dir, 10_000)
    int8 = quantize_int8(fp32_path, cells[::2], tmp_path / "half.int8.onnx")
    p32 = OnnxClassifier(fp32_path).probs(cells[1::2])
    p8 = OnnxClassifier(int8).probs(cells[1::2])
    assert p32[:, 1].std() > 0.01, "the test model must depend on its input"
    diff = np.abs(p8 - p32)
    assert 0 < diff.mean() < 0.02, f"int8 vs float: mean |dp| = {diff.mean():.4f}"
    agree = (p8.argmax(1) == p32.argmax(1)).mean()
    assert agree >= 0.9, f"int8 and float agree on the class of {agree:.0%} of the cells"


@pytest.mark.real_data
def test_parity_on_real_cells(exported: tuple[Path, Path, str], run_dir: Path,
                              real_root: Path) -> None:
    prepare = Preprocess(read_metadata(exported[0]))
    paths = [p for name in ("sipakmed", "herlev")
             for p in scan_dataset(name, real_root / name)["path"].iloc[::97][:4]]
    images = np.stack([prepare.load(Path(p)) for p in paths])
    diff = parity(run_dir, exported[0], images)
    assert diff < TOLERANCE, f"ONNX vs PyTorch on {len(paths)} real cells: max |dp| = {diff:.2e}"
    np.testing.assert_allclose(eager_probs(run_dir, images).sum(1), 1.0, atol=1e-5)


def test_export_errors_are_one_line(tmp_path: Path, run_dir: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    for argv, words in ((["export", str(tmp_path / "none")], "does not exist"),
                        (["export", str(run_dir / "config.yaml")], "not a run folder"),
                        (["export", str(tmp_path)], "not a finished run folder")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err


def test_int8_report_compares_auc_and_speed_on_the_validation_cells(
        run_dir: Path, tmp_path: Path) -> None:
    from aecnn_utils.deploy.quantize import int8_report, run_cells

    report = int8_report(run_dir, tmp_path, calibration=24, reps=1)
    images, labels = run_cells(run_dir, "val")
    assert report["cells"] == len(images) == len(labels) > 0
    assert read_metadata(tmp_path / "model.int8.onnx")["precision"] == "int8"
    for name in ("eager", "onnx", "int8"):
        assert report[f"{name}_img_s"] > 0
        assert 0 <= report[f"{name}_auc"] <= 1
    assert report["onnx_max_abs_diff"] < TOLERANCE  # float32 ONNX = eager (BN folded)
    assert report["onnx_auc"] == pytest.approx(report["eager_auc"], abs=1e-3)
    assert report["int8_max_abs_diff"] < 0.2 and report["int8_same_class"] >= 0.8
    with pytest.raises(ValueError, match="part='pool' is not valid"):
        run_cells(run_dir, "pool")
