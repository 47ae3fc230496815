"""The ablations along the user's path: CLI -> configs -> trainer -> table -> words."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from aecnn_utils.ablation import (
    ABLATION_MODEL,
    ABLATIONS,
    REFERENCE,
    ablation_config,
    ablation_data,
    ablation_summary,
    ablation_table,
    class_sensitivity,
    format_ablation,
    run_ablations,
    scorings,
)
from aecnn_utils.models import build_model
from aecnn_utils.study import study_config
from aecnn_utils.train import make_loss


def test_every_ablation_is_one_config_change_of_the_reference() -> None:
    reference = ablation_config("smoke", REFERENCE)
    assert reference.fingerprint() == study_config("smoke", "plain").fingerprint()
    for name, (group, _) in ABLATIONS.items():
        config = ablation_config("smoke", name)
        changed = {k for k, v in config.to_dict().items() if v != reference.to_dict()[k]}
        assert (name == REFERENCE) == (not changed), name
        assert changed <= {"model_kwargs", "loss", "gamma", "focal_alpha"}, (name, changed)
        model = build_model(config.model, **config.model_kwargs)
        if group == "attention":
            assert model.attention == name.split(": ")[1].removesuffix(" only")
        assert make_loss(config, torch.tensor([30, 20])) is not None  # the loss builds
    assert ablation_config("smoke", "loss: weighted CE").loss == "weighted_ce"
    assert ablation_config("smoke", "loss: hybrid, gamma=4").gamma == 4.0
    assert ablation_config("smoke", "attention: none", "in_domain").protocol == "within"
    with pytest.raises(ValueError, match="not valid"):
        ablation_config("smoke", "attention: everywhere")


def test_the_cpu_profile_ablates_the_fast_table_and_reuses_the_studys_runs() -> None:
    assert ABLATION_MODEL["cpu"] == {"layers": "fast"}
    config = ablation_config("cpu", "attention: spatial only")
    assert config.model_kwargs == {"layers": "fast", "attention": "spatial"}
    assert config.seeds == (0, 1, 2)
    for setting in ("cross", "in_domain"):
        assert ablation_config("cpu", REFERENCE, setting).fingerprint() == study_config(
            "cpu", "model: fast layer table", setting).fingerprint()


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ablation")
    overrides = {"data_root": str(synthetic_root), "image_size": 48, "epochs": 1,
                 "batch_size": 16, "n_boot": 20, "num_workers": 0}
    names = [REFERENCE, "attention: none", "loss: weighted CE"]
    results = run_ablations("smoke", names, tmp / "runs", progress=False, **overrides)
    return {"results": results, "data": ablation_data("smoke", **overrides), "names": names}


def test_ablations_train_in_both_settings_and_tabulate(trained: dict) -> None:
    results, data, names = trained["results"], trained["data"], trained["names"]
    assert list(results) == ["cross", "in_domain"]
    for runs in results.values():
        assert list(runs) == names
        assert runs["attention: none"][0].config.model_kwargs == {"attention": "none"}
        assert runs["loss: weighted CE"][0].config.loss == "weighted_ce"
    table = ablation_table(results, data, n_boot=50)
    assert table["ablation"].tolist() == names
    assert table["group"].tolist() == ["reference", "attention", "loss"]
    for setting in ("cross", "in_domain"):
        for stem in ("auc", "balanced_accuracy", "sensitivity", "specificity"):
            ok = table.dropna(subset=[f"{setting}_{stem}_low"])
            assert (ok[f"{setting}_{stem}_low"] <= ok[f"{setting}_{stem}"] + 1e-9).all()
        per_class = [c for c in table if c.startswith(f"{setting}_sens_")
                     and not c.endswith(("_std", "_low", "_high"))]
        assert per_class, setting
    assert table["minority"].iloc[0] in ("normal", "abnormal")
    pretty = format_ablation(table)
    assert list(pretty.columns)[:2] == ["Ablation", "AUC, across"]
    assert len(format_ablation(table, per_class=True).columns) > 1
    words = ablation_summary(table)
    assert "Theorem 1" in words and "Attention helps" in words
    assert all(any(v in line for v in ("supported", "contradicted", "not shown"))
               for line in words.splitlines() if line.startswith("- **"))


def test_class_sensitivity_is_the_share_of_each_abnormal_class_called_abnormal(
        trained: dict) -> None:
    runs, data = trained["results"]["cross"][REFERENCE], trained["data"]["cross"]
    found = class_sensitivity(runs, data, 50)
    pool = data.frame("pool")
    probs, rows = scorings(runs[0], data)[0]
    for cls, v in found.items():
        member = rows[(pool["source_class"].to_numpy()[rows] == cls)]
        assert v["mean"] == pytest.approx((probs[member, 1] >= 0.5).mean())
        assert v["low"] <= v["mean"] <= v["high"]
    assert set(found) == set(pool.loc[pool["label"] == 1, "source_class"]) & set(
        pool["source_class"].to_numpy()[rows])


def test_scorings_refuse_other_cells(trained: dict) -> None:
    run = trained["results"]["cross"][REFERENCE][0]
    with pytest.raises(ValueError, match="other cells"):
        scorings(run, trained["data"]["in_domain"])


def test_ablation_cli(trained: dict, synthetic_root: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    from aecnn_utils.__main__ import main

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["ablation", "--profile", "smoke", "--ablations", REFERENCE, "attention: sequential",
            "loss: weighted CE", "--settings", "cross", "--data-root", str(synthetic_root),
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--set",
            "image_size=48", "epochs=1", "n_boot=20", "num_workers=0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "**Parallel fusion beats sequential** (across datasets):" in out
    assert "Holm-corrected over a family of 2" in out  # the two claims these arms test
    assert len(list((tmp_path / "runs" / "smoke").glob("aecnn_*"))) == 3
    comparisons = pd.read_csv(tmp_path / "out" / "ablations_comparisons.csv")
    assert list(zip(comparisons["first"], comparisons["second"], strict=True)) == [
        (REFERENCE, "loss: weighted CE"), (REFERENCE, "attention: sequential")]
    assert comparisons["metric"].iloc[0] in ("recall", "specificity")  # Theorem 1's class
    records = pd.read_csv(tmp_path / "out" / "ablations.csv")
    per_class = {m for m in records["metric"] if "|" in m}
    assert per_class and all(m.startswith("recall|") for m in per_class)
    with pytest.raises(SystemExit):
        main(["ablation", "--ablations", "dropout"])
