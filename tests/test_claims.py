"""The claims ledger: verdicts decided from the records, missing records named, the CLI, and the
committed ledger recomputed from the committed records."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.reporting import claims

FIGURES = Path(__file__).resolve().parents[1] / "figures"
COMPARISON = {"setting": "cross", "first": "aecnn", "second": "mobilenet_v3_small",
              "metric": "roc_auc", "diff": 0.05, "low": 0.01, "high": 0.09, "holm_low": 0.0,
              "holm_high": 0.1, "p": 0.01, "p_holm": 0.02, "wins": 15, "n_splits": 20,
              "family": 3, "shown": True, "verdict": "higher"}


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)


def _entry(folder: Path, claim: str) -> claims.Entry:
    (entry,) = [e for e in claims.ledger(folder) if e.claim == claim]
    return entry


VS_MNV3 = "Beyond the paper: AECNN vs MobileNetV3-Small"


@pytest.mark.parametrize(("verdict", "shown", "diff", "expected"), [
    ("higher", True, 0.05, "holds"), ("lower", True, -0.05, "contradicted"),
    ("not shown", False, 0.01, "not shown")])
def test_a_paired_comparison_decides_its_claim(tmp_path: Path, verdict: str, shown: bool,
                                               diff: float, expected: str) -> None:
    _write(tmp_path, "04_table2_comparisons.csv",
           [{**COMPARISON, "verdict": verdict, "shown": shown, "diff": diff}])
    entry = _entry(tmp_path, VS_MNV3)
    assert entry.verdict == expected
    assert entry.value == pytest.approx(diff) and (entry.low, entry.high) == (0.01, 0.09)
    assert "Holm over 3" in entry.reason and "15 of 20" in entry.reason
    # the models the record lacks are not testable, with what would test them
    resnet = _entry(tmp_path, "AECNN outperforms ResNet-50")
    assert resnet.verdict == "not testable here" and "GPU" in resnet.reason


def test_missing_records_name_the_notebook_that_writes_them(tmp_path: Path) -> None:
    entries = claims.ledger(tmp_path)
    by_claim = {e.claim: e for e in entries}
    assert {e.verdict for e in entries} <= set(claims.VERDICTS)
    assert by_claim[VS_MNV3].reason == ("no record `04_table2_comparisons.csv`: run notebook 04 "
                                        "under this profile")
    assert "notebook 08" in by_claim["Attention emphasises the nucleus"].reason
    # the paper against itself needs no record: its abstract is not its Table 2
    agree = by_claim["The abstract's figures are Table 2's"]
    assert agree.verdict == "contradicted" and "EfficientNet-B3" in agree.reason


def test_the_paper_figures_against_our_intervals(tmp_path: Path) -> None:
    metrics = ["accuracy", "precision", "recall", "specificity", "f1", "roc_auc"]
    rows = [{"setting": "cross", "arm": "aecnn", "metric": m, "value": 0.7, "low": 0.6,
             "high": 0.8} for m in metrics]
    _write(tmp_path, "04_table2.csv", rows)
    entry = _entry(tmp_path, "AECNN scores accuracy 97.63%, AUC 0.986")
    assert entry.verdict == "contradicted" and entry.reason.startswith("6 of 6")
    assert "AUC 0.700 [0.600, 0.800] vs 0.986" in entry.effect
    # the same figures, inside our intervals, hold
    _write(tmp_path, "04_table2.csv", [{**r, "low": 0.5, "high": 0.999} for r in rows])
    assert _entry(tmp_path, "AECNN scores accuracy 97.63%, AUC 0.986").verdict == "holds"


def test_speed_nucleus_and_generalisation_rows(tmp_path: Path) -> None:
    _write(tmp_path, "06_targets.csv", [
        {"model": claims.AECNN_BENCH, "target": "training >= 2x MobileNetV3-Small",
         "measured": 2.2, "met": True},
        {"model": claims.AECNN_BENCH, "target": "inference (BN folded) >= MobileNetV3-Small",
         "measured": 0.8, "met": False}])
    _write(tmp_path, "08_nucleus.csv", [
        {"model": "aecnn", "explanation": "spatial attention, stage3", "source_class": "all",
         "n": 50, "mass": 0.2, "area": 0.15, "ratio": 1.3, "ratio_low": 1.1,
         "ratio_high": 1.5}])
    _write(tmp_path, "05_study.csv", [
        {"setting": s, "arm": "plain", "metric": "roc_auc", "value": v, "low": v - 0.1,
         "high": v + 0.05} for s, v in (("cross", 0.7), ("in_domain", 0.97))])
    by_claim = {e.claim: e for e in claims.ledger(tmp_path)}
    assert by_claim["Lightweight in training time"].verdict == "holds"
    assert by_claim["Lightweight at inference (real-time screening)"].verdict == "contradicted"
    nucleus = by_claim["Attention emphasises the nucleus"]
    assert nucleus.verdict == "holds" and nucleus.low == pytest.approx(1.1)
    generalise = by_claim["Robust generalisation across datasets"]
    assert generalise.verdict == "contradicted" and generalise.value == pytest.approx(-0.27)


def test_claims_command_writes_the_ledger(tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    _write(tmp_path / "smoke", "04_table2_comparisons.csv", [COMPARISON])
    assert main(["claims", "--profile", "smoke", "--figures", str(tmp_path)]) == 0
    written = pd.read_csv(tmp_path / "smoke" / "claims.csv")
    assert len(written) == len(claims.LEDGER) and set(written["profile"]) == {"smoke"}
    text = (tmp_path / "smoke" / "claims.md").read_text()
    assert text in capsys.readouterr().out
    assert f"| {VS_MNV3} (-) |" in text and "**holds**" in text


def test_committed_ledger_is_the_one_its_records_give() -> None:
    """figures/cpu/claims.csv is what the ledger computes from figures/cpu now: no verdict
    typed in, none left behind by a record that changed."""
    committed = pd.read_csv(FIGURES / "cpu" / "claims.csv")
    fresh = pd.DataFrame([e.__dict__ for e in claims.ledger(FIGURES / "cpu")])
    assert list(committed["claim"]) == list(fresh["claim"])
    assert list(committed["verdict"]) == list(fresh["verdict"])
    for column in ("value", "low", "high"):
        for a, b in zip(committed[column], fresh[column], strict=True):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)
    assert (FIGURES / "cpu" / "claims.md").read_text() == claims.ledger_markdown(
        claims.ledger(FIGURES / "cpu"), "cpu")
