"""The README's and the docs' published numbers are the ones our code wrote, not typed in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md")))
#: Every generated block a document may hold: block name -> the file it copies.
BLOCKS: dict[str, str] = {
    "cpu-claims": "figures/cpu/claims.md",
    "cpu-table2": "figures/cpu/04_table2.md",
    "cpu-screening": "figures/cpu/04_screening.md",
    "cpu-summary": "figures/cpu/04_summary.md",
    "cpu-newlab": "figures/cpu/09_label_efficiency.md",
    "cpu-newlab-summary": "figures/cpu/09_summary.md",
    "cpu-study": "figures/cpu/05_study.md",
    "cpu-study-summary": "figures/cpu/05_summary.md",
    "cpu-bench": "figures/cpu/bench_models.md",
    "cpu-layers": "figures/cpu/02_layer_table.md",
    "cpu-efficiency": "figures/cpu/06_summary.md",
    "cpu-calibration": "figures/cpu/04_calibration_summary.md",
    "cpu-ablations": "figures/cpu/07_ablations.md",
    "cpu-ablations-summary": "figures/cpu/07_summary.md",
    "cpu-nucleus": "figures/cpu/08_summary.md",
    "cpu-times": "figures/cpu/reproduce_times.md",
}
BLOCK = re.compile(r"<!-- begin ([\w-]+) -->\n(.*?)<!-- end \1 -->", re.S)


def _text(doc: str) -> str:
    """A document's text with its whitespace folded, for phrase checks."""
    return " ".join((ROOT / doc).read_text(encoding="utf-8").split())


RESULTS = "docs/results.md"


@pytest.mark.parametrize("doc", DOCS)
def test_result_blocks_match_the_files_our_runs_wrote(doc: str) -> None:
    for name, shown in BLOCK.findall((ROOT / doc).read_text(encoding="utf-8")):
        assert name in BLOCKS, f"{doc}: unknown block {name}"
        assert shown.strip() == (ROOT / BLOCKS[name]).read_text(encoding="utf-8").strip(), \
            f"{doc}: block {name} differs from {BLOCKS[name]}: copy the file's content into it"


def test_every_result_is_published_in_a_document() -> None:
    shown = {name for doc in DOCS
             for name, _ in BLOCK.findall((ROOT / doc).read_text(encoding="utf-8"))}
    assert set(BLOCKS) <= shown, f"blocks in no document: {sorted(set(BLOCKS) - shown)}"
    readme = {name for name, _ in BLOCK.findall((ROOT / "README.md").read_text("utf-8"))}
    assert {"cpu-claims", "cpu-table2", "cpu-newlab", "cpu-efficiency"} <= readme


def test_readme_is_short_and_speaks_to_users() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not re.search(r"\bissue \d|\.\./shared", text)
    for doc in DOCS:
        for link in re.findall(r"\]\(([^)#]+)\)", (ROOT / doc).read_text(encoding="utf-8")):
            if not link.startswith("http"):
                assert ((ROOT / doc).parent / link).exists(), f"{doc} links to missing {link}"


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
    from aecnn_utils.experiments.tune import TUNE_LRS

    readme = _text(RESULTS)
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
    readme = _text(RESULTS)
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

    from aecnn_utils.experiments.study import REFERENCE

    readme = _text(RESULTS)
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

    readme = _text(RESULTS)
    assert "lowers every model's NLL and Brier score" in readme
    table = pd.read_csv(ROOT / "figures/cpu/04_calibration.csv").set_index("model")
    assert (table["nll_calibrated"] < table["nll"]).all()
    assert (table["brier_calibrated"] < table["brier"]).all()
    assert "the ECE moves by at most 0.02 either way (AECNN's rises)" in readme
    moved = table["ece_calibrated"] - table["ece"]
    assert moved.abs().max() <= 0.02 and moved["aecnn"] > 0


def test_readme_reading_of_the_nucleus_check_holds() -> None:
    """README: AECNN's Grad-CAM favours the nucleus (about 1.5 times its area), more than
    MobileNetV3-Small's; AECNN's spatial attention is at most 1.2x the area at its earlier
    stages and below it at the last, so the attention claim is not shown."""
    import pandas as pd

    readme = _text(RESULTS)
    table = pd.read_csv(ROOT / "figures/cpu/08_nucleus.csv")
    rows = table[table["source_class"] == "all"].set_index(["model", "explanation"])
    aecnn = rows.loc[("aecnn", "Grad-CAM")]
    mobilenet = rows.loc[("mobilenet_v3_small", "Grad-CAM")]
    assert "about half as much again of its mass on the nucleus" in readme
    assert aecnn["ratio_low"] > 1 and 1.4 <= aecnn["ratio"] <= 1.6
    assert "MobileNetV3-Small's less (their intervals only just separate" in readme
    assert 1 < mobilenet["ratio"] < aecnn["ratio"] and mobilenet["ratio_high"] < aecnn["ratio_low"]
    assert "AECNN's own spatial attention is nearly flat" in readme
    attention = rows.loc["aecnn"].drop(index="Grad-CAM").sort_index()
    *earlier, last = attention.itertuples()
    assert earlier and all(r.ratio <= 1.2 for r in earlier) and last.ratio_high < 1
    assert '"The attention focuses on the nucleus" is therefore **not shown**' in readme


def test_readme_reading_of_the_ablations_holds() -> None:
    """README: no design claim is shown in either setting; across datasets the paired
    intervals span about 0.08 or more either side, and the seeds of one arm differ as much as
    the arms; in-domain every variant scores about 0.97-0.98 in AUC, AUC differences a few
    thousandths."""
    import pandas as pd

    readme = _text(RESULTS)
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

    readme = _text(RESULTS)
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

    readme = _text(RESULTS)
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


def test_readme_summary_holds() -> None:
    """The README's short answer, against the records: AECNN's AUC across datasets and
    in-domain, the best of the label-efficiency curve, no comparison shown anywhere, the study's
    number of methods and the hours of training behind the published runs."""
    import json

    import pandas as pd

    from aecnn_utils.experiments.study import study_methods

    readme = _text("README.md")
    table2 = pd.read_csv(ROOT / "figures/cpu/04_table2.csv")
    auc = table2[(table2["arm"] == "aecnn") & (table2["metric"] == "roc_auc")]["value"].item()
    assert "AECNN scores an AUC of about 0.74 on Herlev" in readme and round(auc, 2) == 0.74
    study = pd.read_csv(ROOT / "figures/cpu/05_study.csv").set_index(["setting", "arm", "metric"])
    assert "the same model scores about 0.97" in readme
    assert round(study.loc[("in_domain", "plain", "roc_auc"), "value"], 2) == 0.97
    curve = pd.read_csv(ROOT / "figures/cpu/09_curve.csv", dtype={"k": str})
    best = curve[curve["metric"] == "roc_auc"].sort_values("value").iloc[-1]
    assert "fine-tuning reaches about 0.85 with half of our Herlev cells" in readme
    assert (best["method"], best["k"], round(best["value"], 2)) == ("fine-tune: all", "all", 0.85)
    assert "no method reaches AUC 0.90 here" in readme and best["value"] < 0.90
    assert "no model, method, attention or loss variant is shown better than another" in readme
    for name in ("04_table2", "05_study", "07_ablations", "09_label_efficiency"):
        pairs = pd.read_csv(ROOT / f"figures/cpu/{name}_comparisons.csv")
        assert not pairs["shown"].any(), f"{name} now shows a difference"
    assert "Fourteen methods against the domain gap" in readme and len(study_methods()) == 14
    seconds = sum(json.loads(p.read_text(encoding="utf-8")).get("train_seconds") or 0
                  for p in (ROOT / "published_runs/cpu").glob("*/metrics.json"))
    assert f"{seconds / 3600:.1f} hours of training" in readme

