"""The README's published numbers are the ones our code wrote, not typed in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(text: str, name: str) -> str | None:
    m = re.search(rf"<!-- begin {name} -->\n(.*?)<!-- end {name} -->", text, re.S)
    return m.group(1) if m else None


@pytest.mark.parametrize(("block", "source"), [
    ("cpu-claims", "figures/cpu/claims.md"),
    ("cpu-table2", "figures/cpu/04_table2.md"),
    ("cpu-screening", "figures/cpu/04_screening.md"),
    ("cpu-summary", "figures/cpu/04_summary.md"),
    ("cpu-newlab", "figures/cpu/09_label_efficiency.md"),
    ("cpu-newlab-summary", "figures/cpu/09_summary.md"),
    ("cpu-study", "figures/cpu/05_study.md"),
    ("cpu-study-summary", "figures/cpu/05_summary.md"),
    ("cpu-bench", "figures/cpu/bench_models.md"),
    ("cpu-layers", "figures/cpu/02_layer_table.md"),
    ("cpu-efficiency", "figures/cpu/06_summary.md"),
    ("cpu-calibration", "figures/cpu/04_calibration_summary.md"),
    ("cpu-ablations", "figures/cpu/07_ablations.md"),
    ("cpu-ablations-summary", "figures/cpu/07_summary.md"),
    ("cpu-nucleus", "figures/cpu/08_summary.md"),
])
def test_readme_results_match_the_files_our_runs_wrote(block: str, source: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = _block(readme, block)
    assert shown is not None, f"README lacks the block <!-- begin {block} -->"
    assert shown.strip() == (ROOT / source).read_text(encoding="utf-8").strip(), \
        f"README block {block} differs from {source}: copy the file's content into the README"


def test_benchmark_table_counts_agree_with_notebook_02() -> None:
    """The README's complexity table (the benchmark's) counts parameters and MACs as notebook
    02 does."""
    import pandas as pd

    measured = pd.read_csv(ROOT / "figures/cpu/02_complexity.csv").set_index("model")
    table = (ROOT / "figures/cpu/bench_models.md").read_text(encoding="utf-8")
    labels = {"AECNN (parallel)": "aecnn", "MobileNetV3-Small": "mobilenet_v3_small",
              "EfficientNet-B3": "efficientnet_b3", "ResNet-50": "resnet50"}
    rows = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in
            re.finditer(r"^\| ([^|]+?) \| ([\d.]+) M \| ([\d.]+) \|", table, re.M)}
    assert set(labels) <= set(rows), "the benchmark table lacks rows"
    for label, model in labels.items():
        params, gmacs = rows[label]
        assert params == pytest.approx(measured.loc[model, "params_M"], rel=0.01), label
        assert gmacs == pytest.approx(measured.loc[model, "GMACs"], rel=0.01), label


def test_readme_learning_rate_grid_is_the_profiles() -> None:
    from aecnn_utils.tune import TUNE_LRS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"rate chosen from the same grid \(([\d., ]+)\)", readme)
    assert m, "README lacks the cpu learning-rate grid"
    assert tuple(float(v) for v in m.group(1).split(",")) == TUNE_LRS["cpu"]


@pytest.mark.parametrize(("claim", "source", "marker"), [
    ("no model's AUC is separated from another's", "figures/cpu/04_summary.md", " vs "),
    ("no method is separated from plain", "figures/cpu/05_summary.md", " vs plain"),
])
def test_readme_claims_of_no_difference_hold_in_the_generated_summaries(
        claim: str, source: str, marker: str) -> None:
    """The README's words "not shown" are only as true as every comparison the summary made."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert claim in readme, f"README no longer says {claim!r}: update this test"
    lines = [line for line in (ROOT / source).read_text(encoding="utf-8").splitlines()
             if marker in line]
    assert lines, f"{source} makes no comparison"
    assert all("not shown" in line for line in lines), \
        f"{source} now shows a difference; the README's {claim!r} is false"


def test_readme_reading_of_the_nucleus_feature_reference_holds() -> None:
    """README: the nucleus-feature reference is not separated from plain across datasets by the
    paired test, but is far behind it in-domain (its interval wholly below plain's)."""
    import pandas as pd

    from aecnn_utils.study import REFERENCE

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "is not separated from plain AECNN across datasets although it is far behind" in readme
    pairs = pd.read_csv(ROOT / "figures/cpu/05_study_comparisons.csv")
    (verdict,) = pairs[(pairs["first"] == REFERENCE) & (pairs["second"] == "plain")
                       & (pairs["metric"] == "roc_auc")]["verdict"]
    assert verdict == "not shown"
    table = pd.read_csv(ROOT / "figures/cpu/05_study.csv")
    auc = table[(table["setting"] == "in_domain") & (table["metric"] == "roc_auc")]
    ref, plain = (auc.set_index("arm").loc[name] for name in (REFERENCE, "plain"))
    assert ref["high"] < plain["low"]


def test_readme_reading_of_the_calibration_holds() -> None:
    """README: the temperature lowers every model's NLL and Brier score, and moves the ECE by
    at most 0.02 (AECNN's up)."""
    import pandas as pd

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "lowers every model's NLL and Brier score" in readme
    table = pd.read_csv(ROOT / "figures/cpu/04_calibration.csv").set_index("model")
    assert (table["nll_calibrated"] < table["nll"]).all()
    assert (table["brier_calibrated"] < table["brier"]).all()
    assert "the ECE moves by at most 0.02 either way (AECNN's rises)" in readme
    moved = table["ece_calibrated"] - table["ece"]
    assert moved.abs().max() <= 0.02 and moved["aecnn"] > 0


def test_readme_reading_of_the_nucleus_check_holds() -> None:
    """README: AECNN's Grad-CAM favours the nucleus, not separated from ResNet-50's;
    EfficientNet-B3's looks away; AECNN's spatial attention is at most 1.2x the area."""
    import pandas as pd

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "AECNN's own spatial attention is nearly flat" in readme
    table = pd.read_csv(ROOT / "figures/cpu/08_nucleus.csv")
    rows = table[table["source_class"] == "all"].set_index(["model", "explanation"])
    aecnn, resnet = rows.loc[("aecnn", "Grad-CAM")], rows.loc[("resnet50", "Grad-CAM")]
    assert aecnn["ratio_low"] > 1 and aecnn["ratio_high"] >= resnet["ratio_low"]
    assert "about a quarter more of its mass on the nucleus" in readme
    assert 1.2 <= aecnn["ratio"] <= 1.3
    assert rows.loc[("efficientnet_b3", "Grad-CAM"), "ratio_high"] < 1
    attention = rows.loc["aecnn"].drop(index="Grad-CAM")
    assert len(attention) and (attention["ratio"] <= 1.2).all()


def test_readme_reading_of_the_ablations_holds() -> None:
    """README: no design claim is shown in either setting; across datasets the paired
    intervals span about 0.08 or more either side, and the seeds of one arm differ as much as
    the arms; in-domain every variant scores about 0.97-0.98 in AUC, AUC differences a few
    thousandths."""
    import pandas as pd

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "none of the paper's claims about its design is shown, in either setting" in readme
    words = (ROOT / "figures/cpu/07_summary.md").read_text(encoding="utf-8")
    assert "supported" not in words and "contradicted" not in words
    comparisons = pd.read_csv(ROOT / "figures/cpu/07_ablations_comparisons.csv")
    assert not comparisons["shown"].any()
    cross = comparisons[comparisons["setting"] == "cross"]
    inside = comparisons[comparisons["setting"] == "in_domain"]
    assert "span about ±0.08 or more" in readme
    assert ((cross["high"] - cross["low"]) / 2 > 0.075).all()
    assert "the AUC differences are a few thousandths" in readme
    assert (inside[inside["metric"] == "roc_auc"]["diff"].abs() < 0.01).all()
    records = pd.read_csv(ROOT / "figures/cpu/07_ablations.csv")
    auc = records[records["metric"] == "roc_auc"].set_index(["setting", "arm"])
    assert "every variant scores about 0.97-0.98" in readme
    assert auc.loc["in_domain", "value"].round(2).between(0.97, 0.98).all()
    # "the largest sd over seeds is about the whole range of the arms' AUCs"
    assert "the largest sd over seeds is about the whole range of the arms' AUCs" in readme
    spread = auc.loc["cross", "value"].max() - auc.loc["cross", "value"].min()
    assert 0.8 * spread < auc.loc["cross", "sd_seeds"].max() < 1.25 * spread


def test_readme_reading_of_theorem_1_holds() -> None:
    """README: in-domain, hybrid's minority recall is about five points below weighted CE's; the
    interval excludes zero before Holm's correction, not after."""
    import pandas as pd

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "minority-class recall is about five points *below* weighted cross-entropy's" in readme
    pairs = pd.read_csv(ROOT / "figures/cpu/07_ablations_comparisons.csv")
    (row,) = pairs[(pairs["setting"] == "in_domain") & (pairs["second"] == "loss: weighted CE")
                   ].itertuples()
    assert round(-100 * row.diff) == 5
    assert row.high < 0 < row.holm_high and row.verdict == "not shown"


def test_readme_reading_of_the_label_efficiency_curve_holds() -> None:
    """README: no method is shown better than scratch at any k, none reaches AUC 0.90, the best
    estimate is fine-tuning every weight on the whole pool (0.846); at 16 cells every start from
    SIPaKMeD stays near the SIPaKMeD run where scratch is near chance; the nucleus features have
    the highest estimate from 32 to 128 cells."""
    import pandas as pd

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "is **not shown** at any `k`" in readme
    assert "**No method reaches AUC 0.90, let alone the paper's 0.958**" in readme
    pairs = pd.read_csv(ROOT / "figures/cpu/09_label_efficiency_comparisons.csv")
    assert (pairs["second"].str.startswith("scratch")).all()
    assert (pairs[pairs["metric"] == "roc_auc"]["verdict"] == "not shown").all()
    curve = pd.read_csv(ROOT / "figures/cpu/09_curve.csv", dtype={"k": str})
    curve = curve[curve["metric"] == "roc_auc"]
    assert curve["value"].max() < 0.90
    best = curve.loc[curve["value"].idxmax()]
    assert (best["method"], best["k"], round(best["value"], 3)) == ("fine-tune: all", "all",
                                                                   0.846)
    assert "the curve's best estimate (0.846)" in readme
    at = curve.set_index(["method", "k"])["value"]
    assert "training from scratch about 0.77" in readme and round(at["scratch", "all"], 2) == 0.77
    assert "at 16 cells every fine-tune and joint training stay near the SIPaKMeD run" in readme
    starts = [m for m in set(curve["method"]) if m.startswith(("fine-tune", "joint"))]
    assert len(starts) == 4 and at["scratch", "16"] < 0.6
    assert all(abs(at[m, "16"] - at[m, "0"]) < 0.05 for m in starts)
    assert "From 32 to 128 labelled cells the nucleus-feature regression" in readme
    for k in ("32", "64", "128"):
        assert curve[curve["k"] == k].set_index("method")["value"].idxmax() == "nucleus features"
