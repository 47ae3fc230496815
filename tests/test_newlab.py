"""The label-efficiency curve (notebook 09): its configs, its scorings of each run, and its
comparisons and words, on a small synthetic curve trained once for the module."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import newlab as N
from aecnn_utils.experiments import scores as S
from aecnn_utils.training.prepare import prepare_data

SMALL = {"image_size": 32, "num_workers": 0}


@pytest.fixture(scope="module")
def curve_result(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[N.Curve, S.GridResult, dict]:
    curve = N.Curve("smoke", ("fine-tune: head", N.SCRATCH, N.REFERENCE), (0, 12, None), 2,
                    (0,))
    overrides = {"data_root": str(synthetic_root), **SMALL}
    runs_dir = tmp_path_factory.mktemp("curve")
    runs, sources = N.run_curve(curve, runs_dir, progress=False, **overrides)
    data = prepare_data(curve.source(0, **overrides), progress=False)
    return curve, N.score_curve(curve, runs, sources, data, n_boot=50), overrides


def test_curve_configs_share_the_report_half(synthetic_root: Path, tmp_path: Path) -> None:
    curve = N.Curve("smoke")
    assert curve.cells == N.CURVE_CELLS["smoke"] and curve.seeds == G.CROSS_SEEDS["smoke"]
    source = curve.source(0, data_root=str(synthetic_root), **SMALL)
    assert source.val == source.test == ("herlev",) and source.n_splits >= curve.n_splits
    reports = set()
    for method in N.METHODS:
        for k in (12, None):
            config = curve.config(method, k, 1, 0, tmp_path / "src", data_root=str(
                synthetic_root), **SMALL)
            assert (config.protocol, config.split_seed) == ("adapt", 1)
            assert config.train == (("sipakmed", "herlev") if method == "joint" else ("herlev",))
            assert config.init_from == (str(tmp_path / "src" / "last.pt")
                                        if method in N.FINETUNE else "")
            assert config.train_cells == (k or N.POOL)
            data = prepare_data(config, progress=False)
            reports.add(tuple(sorted(data.frame("test")["path"])))
            labelled = len(data.frame("val")) + (data.frame("train")["dataset"] == "herlev").sum()
            herlev = len(scan_dataset("herlev", synthetic_root / "herlev"))
            assert labelled <= k if k else labelled + len(data.frame("test")) == herlev
    assert len(reports) == 1  # every method and k is scored on the same cells
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        N.Curve("smoke", ("magic",))


def test_scorings_reproduce_each_runs_own_metrics(curve_result: tuple) -> None:
    """The curve rescored on the common cells gives back every run's own report-half AUC, and
    the k = 0 point the source's final epoch."""
    curve, result, _ = curve_result
    est = result.estimate(N.arm_name(N.SCRATCH, 12), "roc_auc")
    runs = result.runs["cross", N.arm_name(N.SCRATCH, 12), ""]
    assert est.n_splits == curve.n_splits and est.n_seeds == 1
    assert est.value == pytest.approx(np.nanmean([r.metrics["test"]["roc_auc"] for r in runs]))
    zero = result.estimate(N.arm_name(N.ZERO, 0), "roc_auc")
    assert 0 <= zero.low <= zero.value <= zero.high <= 1
    for method in ("fine-tune: head",):
        for r in result.runs["cross", N.arm_name(method, 12), ""]:
            assert r.metrics["source_run"] in {s.run_dir.name for s in
                                               result.runs["cross", N.arm_name(N.ZERO, 0), ""]}


def test_curve_tables_comparisons_and_words(curve_result: tuple) -> None:
    _, result, _ = curve_result
    table = N.curve_table(result)
    assert list(table.columns) == ["Method", "k = 0", "k = 12", "k = all"]
    assert list(table["Method"]) == ["fine-tune: head", N.SCRATCH, N.REFERENCE]
    assert table["k = 0"].nunique() == 1  # the SIPaKMeD run, the start of every line
    frame = N.curve_frame(result)
    assert set(frame["k"]) == {"0", "12", "all"} and N.ZERO not in set(frame["method"])
    comparisons = N.curve_comparisons(result)
    assert {(c.first, c.second) for c in comparisons} == {
        (N.arm_name(m, k), N.arm_name(N.SCRATCH, k))
        for m in ("fine-tune: head", N.REFERENCE) for k in (12, None)}
    assert all(c.family == 4 for c in comparisons)
    words = N.curve_words(result, comparisons)
    for c in comparisons:
        method = c.first.rpartition(", k=")[0]
        assert f"- {method} " in words
    assert words.count("AUC 0.90") == 2 and words.count("AUC 0.95") == 2
    assert "the curve's" in N.time_line(result)
    # the answer: from which k the paired test shows a method above scratch, and held there
    head = [c for c in comparisons if c.first.startswith("fine-tune: head")]
    ref = [dataclasses.replace(c, shown=False) for c in comparisons if c not in head]
    up = [dataclasses.replace(c, shown=True, diff=0.1, low=0.05, holm_low=0.01) for c in head]
    words = N.curve_words(result, [*up, *ref])
    assert ("- fine-tune: head beats scratch in AUC from k = 12 on (paired test, Holm over 4: "
            "shown higher at k = 12, all).") in words
    assert (f"- {N.REFERENCE} does not beat scratch in AUC from any k on (paired test, Holm "
            "over 4: no k shown higher or lower).") in words
    k12 = [c for c in up if c.first.endswith("k=12")]
    words = N.curve_words(result, [*k12, *[c for c in head if c.first.endswith("k=all")]])
    assert ("- fine-tune: head does not beat scratch in AUC from any k on (paired test, Holm "
            "over 4: shown higher at k = 12).") in words
