"""Table 2 from the grid, figure data and figures; on fabricated runs and scores (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aecnn_utils.evaluation import metrics as M
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.reporting import plots
from aecnn_utils.reporting import tables as report
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.engine import RunResult, train_run
from aecnn_utils.training.prepare import prepare_data


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


def test_grid_table2_holds_our_records_beside_the_papers(tmp_path: Path) -> None:
    """Table 2's cells are the grid's records (0.5 and the selection threshold), the paper's
    values beside them; write_table writes the records, the readable table and LaTeX."""
    result = _table2_result()
    pretty = report.grid_table2(result)
    assert pretty["Model"].tolist() == ["AECNN", "ResNet-50"]
    e = result.estimate("aecnn", "accuracy")
    assert pretty.loc[0, "Accuracy (ours)"] == W.cell(e)
    assert pretty.loc[0, "Accuracy (paper)"] == "97.63" and pretty.loc[0, "AUC (paper)"] == "0.986"
    at = report.grid_table2(result, at_threshold=True)
    assert at.loc[0, "Accuracy (ours)"] == W.cell(result.estimate("aecnn", "accuracy@threshold"))
    assert at.loc[0, "AUC (ours)"] == pretty.loc[0, "AUC (ours)"]  # threshold-free
    numeric = report.grid_numeric(result)
    assert numeric.loc[0, "f1"] == pytest.approx(100 * result.estimate("aecnn", "f1").value)
    assert numeric.loc[0, "f1_paper"] == 97.02
    written = report.write_table(result.frame(), tmp_path / "out" / "table2", "Test.", pretty)
    assert [p.suffix for p in written] == [".csv", ".md", ".tex"]
    md = written[1].read_text()
    assert "synthetic" in md and md.count("\n|") >= 3
    assert "\\begin{tabular}" in written[2].read_text()
    stored = pd.read_csv(written[0]).set_index(["arm", "metric"])
    assert stored.loc[("aecnn", "accuracy"), "value"] == pytest.approx(e.value)
    comparisons = report.table2_comparisons(result)
    assert {(c.first, c.second) for c in comparisons} == {("aecnn", "resnet50")}
    text = report.grid_summary(result, comparisons)
    assert text.startswith(f"- AECNN: AUC {W.cell(result.estimate('aecnn', 'roc_auc'))}")
    assert "AECNN vs ResNet-50, AUC:" in text and "- Trained on cpu: AECNN, ResNet-50." in text
    assert "as each run recorded it" in text and "AECNN 0.5 min" in text  # 30 s a run


def _table2_result() -> S.GridResult:
    """Two models x two learning rates x two seeds on 20 splits of synthetic cells, scored by
    the grid (AECNN's scores separate the classes better)."""
    from aecnn_utils.experiments.tune import TABLE2_METRICS

    from .test_grid import _cells, _halves, _probs

    rng = np.random.default_rng(3)
    frame = _cells(rng, 40, 6)
    y = frame["label"].to_numpy()
    halves = _halves(rng, frame, 20)
    arms, scores, runs = [], {}, {}
    for model, a in (("aecnn", 2.0), ("resnet50", 1.0)):
        lrs = {"lr 0.01": {"lr": 0.01}, "lr 0.1": {"lr": 0.1}}
        arms.append(G.Arm(model, {"model": model}, lrs))
        scorings = {}
        for lr in lrs:
            per_seed = []
            for _ in range(2):
                probs = _probs(a * y + rng.normal(size=y.size))
                per_seed.append([S.Scoring(probs, sel, rep, 0.5, float(rng.random()))
                                 for sel, rep in halves])
            scorings[lr] = per_seed
            runs["cross", model, lr] = [
                RunResult(Path("."), profile_config("smoke", model=model), pd.DataFrame(),
                          {"device": "cpu", "train_seconds": 30.0})] * 2
        scores["cross", model] = S.score_arm("cross", model, scorings, frame, TABLE2_METRICS,
                                             "max", n_boot=200)
    return S.GridResult(G.Grid("smoke", tuple(arms)), TABLE2_METRICS, scores, runs,
                        {"cross": "synthetic cells"})


def test_figure_data_and_figures(results, tmp_path: Path) -> None:
    detection = report.per_class_detection(results["aecnn"][0])
    assert set(detection["source_class"]) == {"HSIL", "NILM"}
    hsil = detection.set_index("source_class").loc["HSIL"]
    assert hsil["correct"] == pytest.approx(results["aecnn"][0].metrics["test"]["sensitivity"])
    table = report.grid_numeric(_table2_result())
    accuracy = pd.DataFrame([{"model": m, "seed": s, "dataset": d, "accuracy": a}
                             for m in results for s in (0, 1)
                             for d, a in (("SIPaKMeD (train)", 0.9), ("CRIC (test)", 0.7))])
    figs = {"fig1": plots.plot_accuracy_across_datasets(accuracy),
            "fig2": plots.plot_f1_bars(table),
            "cm": plots.plot_confusion_matrices(
                {m: r[0].metrics["test"]["confusion_matrix"] for m, r in results.items()},
                ("normal", "abnormal")),
            "det": plots.plot_per_class_detection(detection.assign(model="aecnn"))}
    for name, fig in figs.items():
        for path in plots.save_figure(fig, tmp_path / name):
            assert path.stat().st_size > 1000


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


def test_figure3_pools_every_split_and_seed_with_a_band(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figure 3 is not one split's curve: every run's report half of every split, at the epoch
    its selection half chose, averaged on a common false-positive grid, with a 95% band."""
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=32, epochs=2,
                            n_boot=20, num_workers=0, n_splits=3, test=("herlev",))
    data = prepare_data(config, progress=False)
    runs = [train_run(config.replace(seed=s), tmp_path / "runs", data=data, progress=False)
            for s in (0, 1)]
    curves = report.roc_curves({"aecnn": runs}, data)
    c = curves["aecnn"]
    per_split = [s["test"]["roc_auc"] for r in runs for s in r.metrics["splits"]["per_split"]]
    assert c["n"] == len(per_split) == 6
    assert c["auc"] == pytest.approx(np.mean(per_split))
    assert c["tpr"][0] >= 0 and c["tpr"][-1] == 1 and np.all(np.diff(c["tpr"]) >= 0)
    assert np.all(c["low"] <= c["high"]) and c["high"][-1] == 1
    fig = plots.plot_roc_curves(curves)
    assert "6 curves" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert plots.save_figure(fig, tmp_path / "fig3")[0].stat().st_size > 1000
