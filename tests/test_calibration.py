"""Calibration: ECE, reliability bins, temperature scaling, and the temperature a run stores and
``evaluate``/``predict``/ONNX apply."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from aecnn_utils.__main__ import main
from aecnn_utils.deploy.export import export_onnx, read_metadata
from aecnn_utils.evaluation.calibration import (
    apply_temperature,
    brier,
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    log_probs,
    nll,
    reliability_bins,
    scale_threshold,
)
from aecnn_utils.reporting import tables as report
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import prepare_data

from .deploy_runs import deploy_data, deploy_run


def _calibrated(n: int, seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Binary logits whose softmax is the true P(label = 1), then multiplied by ``scale``
    (``scale`` > 1: overconfident by exactly that temperature)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-d))).astype(int)
    return scale * np.stack([np.zeros(n), d], axis=1), labels


def test_calibrated_scores_have_a_small_ece_and_overconfident_ones_a_large_one() -> None:
    logits, y = _calibrated(20000)
    assert expected_calibration_error(y, softmax(logits, axis=1)) < 0.02
    hot, _ = _calibrated(20000, scale=3.0)
    assert expected_calibration_error(y, softmax(hot, axis=1)) > 0.08


def test_fitted_temperature_recovers_the_overconfidence_and_helps_held_out_cells() -> None:
    val, yv = _calibrated(4000, seed=1, scale=3.0)
    test, yt = _calibrated(4000, seed=2, scale=3.0)
    t = fit_temperature(val, yv)
    assert t == pytest.approx(3.0, rel=0.1)
    scores = calibration_scores(val, yv, test, yt, threshold=0.3)
    assert scores["temperature"] == pytest.approx(t)
    assert scores["ece_calibrated"] < scores["ece"] / 2
    assert scores["nll_calibrated"] < scores["nll"]
    assert scores["brier_calibrated"] < scores["brier"]
    # the threshold moves so that every decision stays as it was
    before = softmax(test, axis=1)[:, 1] >= 0.3
    after = apply_temperature(test, t)[:, 1] >= scores["threshold_calibrated"]
    assert (before == after).all()


def test_log_probabilities_are_enough() -> None:
    """softmax ignores a shift: scaling log-probabilities equals scaling logits."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(50, 4)) * 3
    for t in (0.5, 1.0, 2.5):
        assert np.allclose(apply_temperature(log_probs(softmax(z, axis=1)), t),
                           apply_temperature(z, t), atol=1e-9)
    assert nll(z, rng.integers(0, 4, 50), 1.0) > 0


def test_reliability_bins_and_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.85, 0.15], [0.2, 0.8], [0.1, 0.9]])
    y = np.array([0, 1, 1, 1])
    bins = reliability_bins(y, probs, n_bins=10)
    assert bins["n"].sum() == 4 and list(bins["n"]) == [1, 1, 1, 1]
    assert bins["mean_prob"].tolist() == pytest.approx([0.1, 0.15, 0.8, 0.9])
    assert bins["observed"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert expected_calibration_error(y, probs, 10) == pytest.approx(
        (0.1 + 0.85 + 0.2 + 0.1) / 4)
    assert brier(y, probs) == pytest.approx(np.mean([0.02, 2 * 0.85 ** 2, 0.08, 0.02]))
    # multi-class: the top class's probability against being right
    three = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert expected_calibration_error(np.array([0, 0]), three) == pytest.approx(
        (0.3 + 0.6) / 2)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="two classes"):
        fit_temperature(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match="N x C"):
        reliability_bins(np.zeros(3), np.zeros(3))
    assert scale_threshold(0.5, 4.0) == pytest.approx(0.5)


def test_a_run_stores_its_temperature_per_split(synthetic_root: Path, tmp_path: Path) -> None:
    """Through the trainer: ``metrics.json`` holds the configured split's calibration and,
    with repeated splits, every split's."""
    config = profile_config("smoke", data_root=str(synthetic_root), test=("herlev",),
                            image_size=32, epochs=1, n_boot=20, n_splits=3, num_workers=0)
    run = train_run(config, tmp_path, progress=False)
    metrics = run.metrics
    cal = metrics["calibration"]
    assert cal["temperature"] > 0 and 0 <= cal["ece"] <= 1 and 0 <= cal["ece_calibrated"] <= 1
    assert cal["nll_calibrated"] <= cal["nll"] + 1e-6 or cal["temperature"] in (0.05, 20.0)
    t = metrics["threshold"]["value"]
    assert cal["threshold_calibrated"] == pytest.approx(scale_threshold(t, cal["temperature"]))
    over = [s["calibration"] for s in metrics["splits"]["per_split"]]
    assert len(over) == 3 and all(0 <= s["ece"] <= 1 for s in over)
    # notebook 04's table, words and diagram, from the stored scores and logits
    table = report.calibration_table({"aecnn": [run]})
    assert table["n"].iloc[0] == 3
    assert table["ece"].iloc[0] == pytest.approx(np.mean([s["ece"] for s in over]))
    assert "AECNN: temperature" in report.calibration_summary(table)
    curve = report.run_reliability(run, prepare_data(config))
    assert curve["temperature"] == cal["temperature"]
    assert curve["ece_before"] == pytest.approx(cal["ece"])
    assert curve["ece_after"] == pytest.approx(cal["ece_calibrated"])


@pytest.fixture(scope="module")
def two_temperatures(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """The deployment test run, copied with its temperature set to 1 and to 3."""
    run = deploy_run(tmp_path_factory.getbasetemp())
    out = {}
    for t in (1.0, 3.0):
        copy = tmp_path_factory.mktemp(f"t{t:g}") / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.onnx"))
        metrics = json.loads((copy / "metrics.json").read_text())
        metrics["calibration"]["temperature"] = t
        metrics["calibration"]["threshold_calibrated"] = scale_threshold(
            metrics["threshold"]["value"], t)
        (copy / "metrics.json").write_text(json.dumps(metrics))
        out[t] = copy
    return out


def test_predict_evaluate_and_onnx_apply_the_runs_temperature(
        two_temperatures: dict[float, Path], tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture) -> None:
    data = deploy_data(tmp_path_factory.getbasetemp()) / "herlev"
    tables = {}
    for t, run in two_temperatures.items():
        for name, model in (("run", run), ("onnx", export_onnx(run))):
            out = run / f"{name}.csv"
            assert main(["predict", str(model), str(data), "--out", str(out),
                         "--no-progress"]) == 0
            tables[t, name] = pd.read_csv(out, keep_default_na=False, na_values=[""])
    capsys.readouterr()
    cols = ["prob_normal", "prob_abnormal"]
    plain, hot = tables[1.0, "run"], tables[3.0, "run"]
    assert np.allclose(apply_temperature(log_probs(plain[cols].to_numpy()), 3.0),
                       hot[cols].to_numpy(), atol=1e-5)
    assert np.allclose(tables[3.0, "onnx"][cols].to_numpy(), hot[cols].to_numpy(), atol=1e-4)
    assert (hot["temperature"] == 3.0).all() and (plain["temperature"] == 1.0).all()
    assert hot["threshold"].iloc[0] == pytest.approx(
        json.loads((two_temperatures[3.0] / "metrics.json").read_text())
        ["calibration"]["threshold_calibrated"])
    clear = (np.abs(plain["prob_abnormal"] - plain["threshold"]) > 1e-4).to_numpy()
    assert (plain["class"] == hot["class"])[clear].all()  # the same decisions
    assert read_metadata(two_temperatures[3.0] / "model.onnx")["temperature"] == 3.0
    # evaluate: calibrated probabilities, the calibrated threshold, ECE with and without
    ev = tmp_path_factory.mktemp("ev")
    assert main(["evaluate", str(two_temperatures[3.0]), "--dataset", "herlev", "--root",
                 str(data), "--out", str(ev)]) == 0
    assert "ECE" in capsys.readouterr().out
    result = json.loads((ev / "metrics.json").read_text())
    assert result["calibration"]["temperature"] == 3.0
    assert result["threshold"]["value"] == pytest.approx(hot["threshold"].iloc[0])
    evaluated = pd.read_csv(ev / "predictions.csv").set_index("path")
    names = hot["path"].map(lambda p: Path(p).name)
    assert np.allclose(evaluated.loc[names, cols].to_numpy(), hot[cols].to_numpy(), atol=1e-4)
