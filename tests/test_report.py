"""Table 2 assembly, refusal to mix incomparable runs, figure data; on fabricated runs (fast)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aecnn_utils import metrics as M
from aecnn_utils import plots, report
from aecnn_utils.config import profile_config
from aecnn_utils.data.prepare import prepare_data
from aecnn_utils.train import RunResult, train_run


def _run(tmp: Path, model: str, seed: int, quality: float, **config_changes) -> RunResult:
    """A finished-looking run whose test predictions have the given separability."""
    config = profile_config("smoke", model=model, seed=seed, **config_changes)
    run_dir = tmp / config.run_id()
    run_dir.mkdir(parents=True)
    rng = np.random.default_rng(seed + 17 * len(model))
    y = rng.integers(0, 2, 200)
    p = np.clip(0.5 + quality * (y - 0.5) + rng.normal(0, 0.25, 200), 0, 1)
    probs = np.stack([1 - p, p], axis=1)
    metrics = {"data": "synthetic data: these are not the paper's numbers",
               "profile": config.profile, "params": 1000, "train_seconds": 1.0,
               "best_epoch": 1, "device": "cpu", "class_names": ["normal", "abnormal"],
               "test": M.classification_metrics(y, probs),
               "test_ci": M.bootstrap_ci(y, probs, n_boot=100, seed=seed)}
    pd.DataFrame({"path": [f"c{i}.bmp" for i in range(200)], "dataset": "cric",
                  "source_class": np.where(y == 1, "HSIL", "NILM"), "label": y,
                  "label_name": np.where(y == 1, "abnormal", "normal"),
                  "patient_or_slide": [str(i // 4) for i in range(200)],
                  "prob_normal": 1 - p, "prob_abnormal": p}).to_csv(
        run_dir / "predictions_test.csv", index=False)
    return RunResult(run_dir, config, pd.DataFrame(), metrics)


@pytest.fixture
def results(tmp_path: Path) -> dict[str, list[RunResult]]:
    return {m: [_run(tmp_path, m, s, q) for s in (0, 1)]
            for m, q in (("resnet50", 0.3), ("efficientnet_b3", 0.4), ("aecnn", 0.5))}


def test_table2_holds_our_numbers_beside_the_papers(results, tmp_path: Path) -> None:
    table = report.table2(results)
    assert list(table["model"]) == ["ResNet-50", "EfficientNet-B3", "AECNN"]
    acc = [r.metrics["test"]["accuracy"] for r in results["aecnn"]]
    row = table.iloc[2]
    assert row["accuracy"] == pytest.approx(100 * np.mean(acc))
    assert row["accuracy_std"] == pytest.approx(100 * np.std(acc, ddof=1))
    assert row["accuracy_low"] <= 100 * acc[0] <= row["accuracy_high"]
    assert row["accuracy_paper"] == 97.63 and row["roc_auc_paper"] == 0.986
    assert 0 <= row["roc_auc"] <= 1  # AUC as a fraction, like the paper
    pretty = report.format_table2(table)
    assert "Accuracy (ours)" in pretty and "Accuracy (paper)" in pretty
    assert " ± " in pretty.loc[2, "Accuracy (ours)"] and "[" in pretty.loc[2, "Accuracy (ours)"]
    written = report.write_table(table, tmp_path / "out" / "table2", caption="Test.")
    assert [p.suffix for p in written] == [".csv", ".md", ".tex"]
    md = written[1].read_text()
    assert "synthetic data" in md and md.count("\n|") >= 4
    assert "\\begin{tabular}" in written[2].read_text()
    assert pd.read_csv(written[0])["accuracy"].iloc[2] == pytest.approx(row["accuracy"])


def test_refuses_to_mix_profiles_or_data(results, tmp_path: Path) -> None:
    report.check_comparable(results)  # models and seeds may differ
    other = dict(results, aecnn=[_run(tmp_path / "x", "aecnn", 0, 0.5, image_size=96)])
    with pytest.raises(report.IncomparableRuns, match="differ in image_size"):
        report.table2(other)
    foreign = _run(tmp_path / "y", "aecnn", 0, 0.5)
    foreign.metrics["data"] = "real data: sipakmed, herlev"
    with pytest.raises(report.IncomparableRuns, match="used data 'real data"):
        report.check_comparable(dict(results, aecnn=[foreign]))
    moved = _run(tmp_path / "z", "aecnn", 0, 0.5, data_root="/the/same/cells/elsewhere")
    report.check_comparable(dict(results, aecnn=[moved]))  # the path is not the data
    moved.metrics["data_fingerprint"] = "other cells"
    with pytest.raises(report.IncomparableRuns, match="used data_fingerprint 'other cells'"):
        report.check_comparable(dict(results, aecnn=[moved]))
    with pytest.raises(report.IncomparableRuns, match="no runs"):
        report.check_comparable({})


def test_figure_data_and_figures(results, tmp_path: Path) -> None:
    curves = report.roc_curves(results)
    for model, (fpr, tpr, auc) in curves.items():
        assert auc == pytest.approx(results[model][0].metrics["test"]["roc_auc"])
        assert fpr[0] == 0 and tpr[-1] == 1
    detection = report.per_class_detection(results["aecnn"][0])
    assert set(detection["source_class"]) == {"HSIL", "NILM"}
    hsil = detection.set_index("source_class").loc["HSIL"]
    assert hsil["correct"] == pytest.approx(results["aecnn"][0].metrics["test"]["sensitivity"])
    table = report.table2(results)
    accuracy = pd.DataFrame([{"model": m, "seed": s, "dataset": d, "accuracy": a}
                             for m in results for s in (0, 1)
                             for d, a in (("SIPaKMeD (train)", 0.9), ("CRIC (test)", 0.7))])
    figs = {"fig1": plots.plot_accuracy_across_datasets(accuracy),
            "fig2": plots.plot_f1_bars(table), "fig3": plots.plot_roc_curves(curves),
            "cm": plots.plot_confusion_matrices(
                {m: r[0].metrics["test"]["confusion_matrix"] for m, r in results.items()},
                ("normal", "abnormal")),
            "det": plots.plot_per_class_detection(detection.assign(model="aecnn"))}
    for name, fig in figs.items():
        for path in plots.save_figure(fig, tmp_path / name):
            assert path.stat().st_size > 1000


def test_undefined_values_stored_as_null_become_nan(results) -> None:
    run = results["aecnn"][0]
    run.metrics["test"]["precision"] = None          # as read back from metrics.json
    run.metrics["test_ci"]["precision"] = {"value": None, "low": None, "high": None,
                                           "n_boot": 0}
    table = report.table2({"aecnn": [run]})
    assert np.isnan(table.loc[0, "precision"]) and np.isnan(table.loc[0, "precision_low"])
    assert report.format_table2(table).loc[0, "Precision (ours)"] == "-"


def test_repeated_splits_give_mean_sd_and_range(results) -> None:
    run = results["aecnn"][0]
    aucs = [0.6, 0.7, 0.8]
    run.metrics["splits"] = {"n_splits": 3, "test": {"roc_auc": {
        "mean": float(np.mean(aucs)), "sd": float(np.std(aucs, ddof=1)), "min": 0.6,
        "max": 0.8, "n": 3}}}
    table = report.table2({"aecnn": [run]})
    row = table.iloc[0]
    assert row["roc_auc"] == pytest.approx(0.7) and row["roc_auc_std"] == pytest.approx(0.1)
    assert (row["roc_auc_min"], row["roc_auc_max"]) == (0.6, 0.8)
    assert row["spread"] == "sd over 3 splits"
    # without an interval of the mean over splits, the configured split's interval is shown
    assert row["roc_auc_low"] == pytest.approx(run.metrics["test_ci"]["roc_auc"]["low"])
    assert "3 selection/report splits" in report.caption(table, "Table 2")
    run.metrics["splits"]["test"]["roc_auc"].update(low=0.65, high=0.75)
    row = report.table2({"aecnn": [run]}).iloc[0]
    assert (row["roc_auc_low"], row["roc_auc_high"]) == (0.65, 0.75)



def test_several_seeds_with_repeated_splits_spread_over_seeds(results) -> None:
    """With several training seeds the spread is the seeds' (training noise), the range the
    seeds' means and the interval the seeds' bounds averaged."""
    runs = results["aecnn"]
    for run, (mean, low, high) in zip(runs, ((0.70, 0.60, 0.80), (0.80, 0.72, 0.88)),
                                      strict=True):
        run.metrics["splits"] = {"n_splits": 20, "test": {"roc_auc": {
            "mean": mean, "sd": 0.03, "min": mean - 0.1, "max": mean + 0.1, "n": 20,
            "low": low, "high": high}}}
    row = report.table2({"aecnn": runs}).iloc[0]
    assert row["roc_auc"] == pytest.approx(0.75)
    assert row["roc_auc_std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert (row["roc_auc_min"], row["roc_auc_max"]) == (0.7, 0.8)
    assert (row["roc_auc_low"], row["roc_auc_high"]) == (pytest.approx(0.66),
                                                         pytest.approx(0.84))
    assert row["spread"] == "sd over 2 seeds"
    text = report.caption(report.table2({"aecnn": runs}), "Table 2")
    assert "mean over 2 training seeds" in text and "sd over the seeds" in text

def test_reference_classifiers_score_the_prevalence() -> None:
    from aecnn_utils.evaluation import reference_scores

    config = profile_config("smoke", test=("herlev",), n_splits=1)
    pool = pd.DataFrame({"label": [1, 1, 1, 0], "split": ["test"] * 4,
                         "dataset": "herlev", "patient_or_slide": list("abcd")})
    ref = reference_scores(config, pool)
    assert ref["all abnormal"]["accuracy"]["mean"] == 0.75
    assert ref["all abnormal"]["sensitivity"]["mean"] == 1.0
    assert ref["all normal"]["specificity"]["mean"] == 1.0
    assert ref["all normal"]["roc_auc"]["mean"] == 0.5 == ref["all abnormal"]["roc_auc"]["mean"]
    assert ref["all abnormal"]["f1"]["mean"] == pytest.approx(2 * 0.75 / 1.75)


def test_summary_words_follow_the_intervals(results) -> None:
    def row(model: str, auc: float, low: float, high: float) -> dict:
        return {"model": model, "roc_auc": auc, "roc_auc_std": 0.01, "roc_auc_low": low,
                "roc_auc_high": high, "balanced_accuracy": 70.0, "balanced_accuracy_std": 1.0,
                "prevalence": 74.0, "accuracy": 74.0, "f1": 85.0, "sens_at_spec95": 20.0,
                "spec_at_sens95": 10.0}
    screening = pd.DataFrame([row("AECNN", 0.80, 0.75, 0.85), row("ResNet-50", 0.78, 0.70, 0.84),
                              row("EfficientNet-B3", 0.60, 0.55, 0.70),
                              row("All abnormal (reference)", 0.5, np.nan, np.nan)])
    for run in results["efficientnet_b3"]:
        run.metrics["device"] = "cuda"
    text = report.summary_text(screening, results)
    assert "- Trained on cpu: ResNet-50, AECNN; cuda: EfficientNet-B3." in text
    assert "on its device, as the run recorded it" in text and "AECNN 0 min" in text  # 1 s
    results["efficientnet_b3"][0].config = replace(results["efficientnet_b3"][0].config, amp=True)
    assert "cuda (mixed precision): EfficientNet-B3" in report.summary_text(screening, results)
    assert "AECNN vs ResNet-50: a difference in AUC is not shown" in text
    assert "AECNN vs EfficientNet-B3: AECNN's AUC is higher beyond the slide-level" in text
    assert "74.0% of the report cells are abnormal" in text
    assert "AECNN has the highest mean AUC" in text


def test_figure1_leaves_out_training_cells_of_a_run_without_checkpoint(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run folder copied without its checkpoints (e.g. trained on a lent GPU) still reports."""
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=32, epochs=1,
                            n_boot=20, num_workers=0)
    data = prepare_data(config, progress=False)
    run = train_run(config, tmp_path / "runs", data=data, progress=False)
    full = report.accuracy_by_dataset({"aecnn": [run]}, data, "cpu")
    assert list(full["split"]) == ["train", "val", "test"]
    run.best_checkpoint.unlink()
    with pytest.warns(UserWarning, match="no best.pt"):
        partial = report.accuracy_by_dataset({"aecnn": [run]}, data, "cpu")
    pd.testing.assert_frame_equal(partial, full.iloc[1:].reset_index(drop=True))
