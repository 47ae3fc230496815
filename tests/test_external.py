"""``python -m aecnn_utils evaluate``: a finished run scored on a dataset folder it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aecnn_utils.__main__ import main
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.synthetic import generate_dataset
from aecnn_utils.deploy.evaluate import evaluate_run
from aecnn_utils.evaluation import metrics as M
from aecnn_utils.evaluation.calibration import apply_temperature, log_probs
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run


@pytest.fixture(scope="module")
def run_dir(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke run (binary, SIPaKMeD -> Herlev halves)."""
    config = profile_config("smoke", data_root=str(synthetic_root), test=("herlev",),
                            image_size=32, epochs=1, n_boot=50, num_workers=0)
    return train_run(config, tmp_path_factory.mktemp("runs"), progress=False).run_dir


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_evaluate_scores_every_cell_with_the_runs_threshold(
        run_dir: Path, synthetic_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(run_dir / "best.pt"), "--dataset", "herlev", "--root",
                 str(synthetic_root / "herlev"), "--out", str(tmp_path / "out")]) == 0
    assert "AUC" in capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    preds = pd.read_csv(tmp_path / "out" / "predictions.csv")
    cells = scan_dataset("herlev", synthetic_root / "herlev")
    assert result["n_cells"] == len(preds) == len(cells)
    probs = preds[["prob_normal", "prob_abnormal"]].to_numpy()
    again = M.classification_metrics(preds["label"], probs)
    assert result["metrics"]["roc_auc"] == pytest.approx(again["roc_auc"])
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    # the run's threshold moved to its temperature-scaled probabilities: the same decisions
    calibration = run_metrics["calibration"]
    assert result["calibration"]["temperature"] == calibration["temperature"]
    assert result["threshold"]["value"] == calibration["threshold_calibrated"]
    t = result["threshold"]["value"]
    clear = np.abs(probs[:, 1] - t) > 1e-6  # the CSV holds float32 scores, rounded
    assert (preds["pred_val_threshold"] == (probs[:, 1] >= t))[clear].all()
    raw = apply_temperature(log_probs(probs), 1 / calibration["temperature"])[:, 1]
    clear &= np.abs(raw - run_metrics["threshold"]["value"]) > 1e-6
    assert ((raw >= run_metrics["threshold"]["value"]) == (probs[:, 1] >= t))[clear].all()
    assert result["ci_unit"] == "patient_or_slide"
    assert result["ci"]["roc_auc"]["low"] <= result["metrics"]["roc_auc"] <= \
        result["ci"]["roc_auc"]["high"]
    assert result["seen"]["excluded_classes"] == ["normal_columnar"]  # no SIPaKMeD counterpart


def test_evaluate_on_the_cropped_cric_layout(run_dir: Path, tmp_path: Path) -> None:
    root = generate_dataset("cric", tmp_path / "cric", n_per_class=4, seed=5,
                            cric_layout="cropped", field_size=(320, 240))
    result = evaluate_run(run_dir, "cric", root, tmp_path / "out", progress=False)
    assert result["n_cells"] == len(scan_dataset("cric", root))
    assert "seen" not in result  # every CRIC class is squamous


@pytest.mark.real_data
def test_evaluate_on_real_herlev(run_dir: Path, real_root: Path, tmp_path: Path) -> None:
    result = evaluate_run(run_dir, "herlev", real_root / "herlev", tmp_path, progress=False)
    assert result["n_cells"] == len(scan_dataset("herlev", real_root / "herlev"))
    assert 0 <= result["metrics"]["roc_auc"] <= 1


def test_evaluate_bad_inputs_are_one_line_errors(run_dir: Path, synthetic_root: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    args = ["--dataset", "herlev", "--root"]
    err = _one_line_error(["evaluate", str(run_dir), *args, str(tmp_path / "none")], capsys)
    assert "herlev root not found" in err
    err = _one_line_error(["evaluate", str(run_dir), *args, str(synthetic_root / "sipakmed")],
                          capsys)
    assert "herlev" in err and "layout" in err.lower()
    err = _one_line_error(["evaluate", str(tmp_path / "nope"), *args,
                           str(synthetic_root / "herlev")], capsys)
    assert "does not exist" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error(["evaluate", str(tmp_path / "empty"), *args,
                           str(synthetic_root / "herlev")], capsys)
    assert "not a finished run folder" in err


def test_checkpoint_of_another_kit_version_is_refused(run_dir: Path, synthetic_root: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    ckpt = torch.load(old / "best.pt", weights_only=True)
    torch.save({**ckpt, "format": "aecnn-kit/checkpoint-v0"}, old / "best.pt")
    err = _one_line_error(["evaluate", str(old), "--dataset", "herlev", "--root",
                           str(synthetic_root / "herlev")], capsys)
    assert "another kit version" in err and "checkpoint-v0" in err


def test_run_of_another_class_scheme_is_refused(synthetic_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    config = profile_config("smoke", data_root=str(synthetic_root), scheme="native",
                            protocol="within", train=("cric",), val_fraction=0.3,
                            test_fraction=0.3, image_size=32, epochs=1, n_boot=20,
                            num_workers=0)
    native = train_run(config, tmp_path, progress=False).run_dir
    err = _one_line_error(["evaluate", str(native), "--dataset", "herlev", "--root",
                           str(synthetic_root / "herlev")], capsys)
    assert "scheme 'native'" in err
    assert np.isfinite(json.loads((native / "metrics.json").read_text())["test"]["accuracy"])
