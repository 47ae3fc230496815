"""The ablations along the user's path: CLI -> configs -> trainer -> table -> words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments.ablation import (
    ABLATIONS,
    REFERENCE,
    ablation_comparisons,
    ablation_grid,
    ablation_metrics,
    ablation_words,
)
from aecnn_utils.experiments.study import study_grid
from aecnn_utils.models import build_model
from aecnn_utils.training.build import make_loss


def ablation_config(profile: str, name: str, setting: str = "cross") -> object:
    """One ablation's config, as its grid trains it."""
    grid = ablation_grid(profile, [name], settings=(setting,))
    return grid.config(grid.arm(name), "", setting)


def study_config(profile: str, method: str, setting: str = "cross") -> object:
    grid = study_grid(profile, [method], settings=(setting,), reference=False)
    return grid.config(grid.arm(method), "", setting)


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


def test_the_cpu_profile_ablates_the_default_table_and_reuses_the_studys_runs() -> None:
    config = ablation_config("cpu", "attention: spatial only")
    assert config.model_kwargs == {"attention": "spatial"}
    # the id names the default table: the published runs that named it are found again
    assert config.fingerprint() == config.replace(
        model_kwargs={"layers": "fast", "attention": "spatial"}).fingerprint()
    assert config.fingerprint() != config.replace(
        model_kwargs={"layers": "base", "attention": "spatial"}).fingerprint()
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
    grid = ablation_grid("smoke", names)
    runs = G.run_grid(grid, tmp / "runs", progress=False, **overrides)
    data = G.grid_data(grid, **overrides)
    result = G.score_grid(grid, runs, data, ablation_metrics(data["cross"]))
    return {"runs": runs, "data": data, "names": names, "result": result}


def test_ablations_train_in_both_settings_and_are_compared(trained: dict) -> None:
    runs, data, result = trained["runs"], trained["data"], trained["result"]
    assert {s for s, *_ in runs} == {"cross", "in_domain"}
    for setting in ("cross", "in_domain"):
        assert runs[setting, "attention: none", ""][0].config.model_kwargs == {
            "attention": "none"}
        assert runs[setting, "loss: weighted CE", ""][0].config.loss == "weighted_ce"
        assert (runs[setting, REFERENCE, ""][0].config.protocol == "within") == (
            setting == "in_domain")
    frame = result.frame()
    assert list(dict.fromkeys(frame["arm"])) == trained["names"]
    assert set(frame["group"]) == {"reference", "attention", "loss"}
    ok = frame.dropna(subset=["low"])
    assert (ok["low"] <= ok["value"] + 1e-9).all() and (ok["value"] <= ok["high"] + 1e-9).all()
    comparisons = ablation_comparisons(result, data["cross"])
    assert [(c.first, c.second) for c in comparisons] == [
        (REFERENCE, "loss: weighted CE"), (REFERENCE, "attention: none")]
    words = ablation_words(result, comparisons)
    assert "Theorem 1" in words and "Attention helps" in words
    *claims, timing = words.splitlines()
    assert all(any(v in line for v in ("supported", "contradicted", "not shown"))
               for line in claims)
    minutes = np.mean([r.metrics["train_seconds"] for r in result.runs["cross", REFERENCE, ""]])
    assert timing.startswith("- Training time per run") and \
        f"{REFERENCE} {minutes / 60:.1f} min" in timing


def test_class_sensitivity_is_the_share_of_each_abnormal_class_called_abnormal(
        trained: dict) -> None:
    run, data = trained["runs"]["cross", REFERENCE, ""][0], trained["data"]["cross"]
    pool = data.frame("pool")
    (scoring, *_) = S.run_scorings(run, data)
    classes = set(pool.loc[pool["label"] == 1, "source_class"])
    assert {m.cls for m in ablation_metrics(data) if m.cls} == classes
    for cls in classes:
        member = scoring.report_rows[pool["source_class"].to_numpy()[scoring.report_rows] == cls]
        e = trained["result"].estimate(REFERENCE, f"recall|{cls}")
        if member.size:  # one split, one seed: the share of the class called abnormal
            assert e.value == pytest.approx((scoring.probs[member, 1] >= 0.5).mean())


def test_scorings_refuse_other_cells(trained: dict) -> None:
    run = trained["runs"]["cross", REFERENCE, ""][0]
    with pytest.raises(ValueError, match="other cells"):
        S.run_scorings(run, trained["data"]["in_domain"])


def test_ablation_cli(synthetic_root: Path, tmp_path: Path,
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
