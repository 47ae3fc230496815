"""The cross-dataset study along the user's path: methods -> configs -> trainer -> table, the
nucleus-feature reference, the scale shortcut and the domain embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from aecnn_utils.config import profile_config
from aecnn_utils.data.explore import ZOOM_SOURCES, image_statistics, scale_shortcut
from aecnn_utils.data.loaders import CellDataset, make_loader
from aecnn_utils.data.prepare import prepare_data
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.segment import NUCLEUS_FEATURES
from aecnn_utils.data.transforms import build_eval_transform
from aecnn_utils.domain import (
    domain_separability,
    embed_2d,
    penultimate_features,
    run_features,
)
from aecnn_utils.models import build_model
from aecnn_utils.morphology import FEATURES_VERSION, NAME, fit_reference
from aecnn_utils.study import (
    CROSS_SEEDS,
    METHODS,
    REFERENCE,
    best_method,
    run_study,
    study_caption,
    study_config,
    study_summary,
    study_table,
)


def _tiny(root: Path) -> dict:
    return {"data_root": str(root), "image_size": 48, "epochs": 1, "batch_size": 16,
            "n_boot": 20, "num_workers": 0}


def test_study_trains_each_method_in_both_settings_and_tabulates(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    methods = ["plain", "test: AdaBN"]
    results = run_study("smoke", methods, tmp_path / "runs", progress=False,
                        **_tiny(synthetic_root))
    assert set(results) == {"cross", "in_domain"}
    for setting, runs in results.items():
        assert list(runs) == [*methods, REFERENCE]
        assert runs["test: AdaBN"][0].config.adapt_bn
        assert (runs["plain"][0].config.protocol == "within") == (setting == "in_domain")
    table = study_table(results)
    assert table["method"].tolist() == [*methods, REFERENCE]
    assert table["transductive"].tolist() == [False, True, False]
    for col in ("cross_auc", "in_domain_auc", "cross_balanced_accuracy"):
        assert table[col].between(0, 1).all(), col
    text = study_summary(table)
    assert "- test: AdaBN (transductive): AUC" in text
    assert f"Chosen on the selection halves: **{best_method(table)}**" in text
    assert best_method(table) == "plain"  # the only non-transductive method
    assert f"- Trained on (across datasets) cpu: plain, test: AdaBN, {REFERENCE}." in text
    lower = table.assign(cross_auc_high=table["cross_auc_low"] - 1)  # no overlap with plain
    assert "vs plain: worse" in study_summary(lower.assign(
        cross_auc=np.where(lower["method"] == "plain", 0.9, 0.1),
        cross_auc_low=np.where(lower["method"] == "plain", 0.85, 0.05),
        cross_auc_high=np.where(lower["method"] == "plain", 0.95, 0.15)))
    plain = results["cross"]["plain"][0]
    feats = run_features(plain, {"train": np.array([0, 2, 4]), "pool": np.array([1, 3])})
    assert feats.shape[0] == 5 and np.isfinite(feats).all()
    again = run_study("smoke", methods, tmp_path / "runs", progress=False,
                      **_tiny(synthetic_root))
    assert all(r[0].reused for runs in again.values() for r in runs.values())



def test_study_trains_several_seeds_across_datasets_and_says_so(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cpu profile trains every method with CROSS_SEEDS across datasets (one seed's noise is
    as large as the effects); the table's spread and caption then speak of seeds."""
    assert study_config("cpu", "plain").seeds == CROSS_SEEDS["cpu"] != (0,)
    assert study_config("cpu", "plain", "in_domain").seeds == (0,)
    assert study_config("cpu", "plain", seeds=[4]).seeds == (4,)
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    results = run_study("smoke", ["plain", "input: grey"], tmp_path / "runs", progress=False,
                        reference=False, **{**_tiny(synthetic_root), "seeds": [0, 1]})
    assert [r.config.seed for r in results["cross"]["plain"]] == [0, 1]
    table = study_table(results)
    assert set(table["cross_spread"]) == {"sd over 2 seeds"}
    assert "spread: across datasets: sd over 2 seeds" in study_caption(table)
    aucs = [r.metrics["test"]["roc_auc"] for r in results["cross"]["plain"]]
    row = table.set_index("method").loc["plain"]
    assert row["cross_auc"] == pytest.approx(np.mean(aucs))
    assert row["cross_auc_std"] == pytest.approx(np.std(aucs, ddof=1))

def test_every_method_is_a_valid_config() -> None:
    for method in METHODS:
        for setting in ("cross", "in_domain"):
            study_config("cpu", method, setting)
    with pytest.raises(ValueError, match="method='dropout' is not valid"):
        study_config("cpu", "dropout")
    with pytest.raises(ValueError, match="setting='lab' is not valid"):
        study_config("cpu", "plain", "lab")


def test_nucleus_feature_reference_learns_and_is_scored_like_a_run(
        tmp_path: Path, cache_dir: Path) -> None:
    from aecnn_utils.data.synthetic import generate_all

    root = tmp_path / "data"
    generate_all(root, n_per_class=40, seed=2, field_size=(320, 240))
    config = profile_config("smoke", data_root=str(root), protocol="within",
                            train=("sipakmed",), val_fraction=0.25, test_fraction=0.25,
                            n_boot=50)
    result = fit_reference(config, tmp_path / "runs", cache_dir=cache_dir, progress=False)
    m = result.metrics
    assert result.run_dir.name.startswith(f"{NAME}{FEATURES_VERSION}_")
    assert list(m["coefficients"]) == list(NUCLEUS_FEATURES)
    assert m["test"]["roc_auc"] > 0.7  # synthetic abnormal nuclei are larger and darker
    preds = pd.read_csv(result.run_dir / "predictions_test.csv")
    assert len(preds) == m["sizes"]["test"]
    assert fit_reference(config, tmp_path / "runs", cache_dir=cache_dir).reused


def test_scale_shortcut_reads_the_zoom_of_each_mode(synthetic_root: Path) -> None:
    frames = [scan_dataset(n, synthetic_root / n, scheme="binary") for n in ("sipakmed",
                                                                            "herlev")]
    stats = pd.concat([image_statistics(f, max_per_class=6, progress=False) for f in frames],
                      ignore_index=True)
    assert (stats["nucleus_diameter"] > 0).all()
    assert (stats["cell_extent"] <= stats[["width", "height"]].max(axis=1)).all()
    table = scale_shortcut(stats)
    assert len(table) == 2 * len(ZOOM_SOURCES)
    assert table["auc"].between(0, 1).all()
    # an exact check: a shortcut that is the label gives AUC 1
    fake = stats.assign(width=np.where(stats["label_name"] == "abnormal", 500, 50), height=10)
    assert scale_shortcut(fake).query("resize_mode == 'pad'")["auc"].eq(1.0).all()


def test_penultimate_features_embedding_and_domain_probe(synthetic_root: Path,
                                                         cache_dir: Path) -> None:
    config = profile_config("smoke", **{**_tiny(synthetic_root), "test": ("herlev",)},
                            n_splits=1, val_fraction=0.5)
    data = prepare_data(config, cache_dir, progress=False)
    model = build_model("aecnn", len(data.class_names))
    transform = build_eval_transform(config.image_size, data.norm)
    feats = {part: penultimate_features(model, make_loader(
        CellDataset(data.caches[part], transform), 32, shuffle=False)) for part in ("train",
                                                                                   "pool")}
    assert feats["train"].shape[0] == len(data.frame("train"))
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert feats["pool"].shape[1] == head.in_features
    x = np.concatenate([feats["train"], feats["pool"]])
    points = embed_2d(x)
    assert points.shape == (len(x), 2) and np.isfinite(points).all()
    datasets = np.array(["sipakmed"] * len(feats["train"]) + ["herlev"] * len(feats["pool"]))
    groups = np.concatenate([data.frame("train")["patient_or_slide"],
                             data.frame("pool")["patient_or_slide"]])
    auc = domain_separability(x, datasets, groups)
    assert 0.0 <= auc <= 1.0
    shifted = x + (datasets == "herlev")[:, None] * 10.0  # an obvious domain offset
    assert domain_separability(shifted, datasets, groups) > 0.95
    with pytest.raises(ValueError, match="two datasets"):
        domain_separability(x, np.array(["a"] * len(x)), groups)


def test_elastic_irregularity_measures_the_outline_change(synthetic_root: Path) -> None:
    from aecnn_utils.data.explore import elastic_irregularity
    from aecnn_utils.data.transforms import AugmentConfig

    df = scan_dataset("sipakmed", synthetic_root / "sipakmed", scheme="binary")
    table = elastic_irregularity(df, 64, per_class=3, repeats=2, progress=False)
    assert len(table) == 3 * df["source_class"].nunique()
    assert table[["before", "after"]].apply(lambda c: c.between(0, 1)).all().all()
    assert not np.allclose(table["before"], table["after"])
    still = elastic_irregularity(df, 64, AugmentConfig(elastic_alpha=0.0), per_class=3,
                                 repeats=2, progress=False)
    np.testing.assert_allclose(still["after"], still["before"], atol=1e-9)


def test_study_cli_prints_the_table_and_refuses_unknown_methods(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from aecnn_utils import config as C
    from aecnn_utils.__main__ import main

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(C, "TUNED_DIR", tmp_path / "profiles")
    argv = ["study", "--profile", "smoke", "--methods", "plain", "input: grey",
            "--data-root", str(synthetic_root), "--runs-dir", str(tmp_path / "runs"),
            "--set", "image_size=48", "epochs=1", "n_boot=20", "num_workers=0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "input: grey vs plain, AUC:" in out and "Choosing the method per split" in out
    assert "Holm-corrected over a family of 9" in out  # 3 arms against plain x 3 metrics
    assert len(list((tmp_path / "runs" / "smoke").glob("aecnn_*"))) == 4
    # what most splits chose is recorded; the profile applies it, the study's "plain" does not
    recipe = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())["recipe"]
    assert recipe["method"] in ("plain", "input: grey")
    assert sum(recipe["splits_chose"].values()) == 1 and recipe["method"] in recipe["splits_chose"]
    chosen = "grey" if recipe["method"] == "input: grey" else "rgb"
    assert profile_config("smoke").input_mode == chosen
    assert study_config("smoke", "plain").input_mode == "rgb"
    assert profile_config("smoke", recipe=False).input_mode == "rgb"
    assert main([*argv, "--settings", "cross", "--no-reference", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "input: grey" in out and REFERENCE not in out
    with pytest.raises(SystemExit):
        main(["study", "--methods", "dropout"])


@pytest.mark.parametrize(("monitor", "chosen"), [("val_auc", "input: grey"),
                                                 ("val_loss", "scale: random zoom")])
def test_the_chosen_method_follows_the_monitors_direction(monitor: str, chosen: str) -> None:
    """Highest selection AUC, but lowest selection loss (the smoke profile monitors the loss);
    transductive methods and the reference are never chosen."""
    table = pd.DataFrame({
        "method": ["plain", "input: grey", "scale: random zoom", "test: AdaBN", REFERENCE],
        "transductive": [False, False, False, True, False],
        "cross_selection": [0.5, 0.9, 0.1, 0.99 if monitor == "val_auc" else 0.01, 0.95],
        "monitor": monitor})
    assert best_method(table) == chosen
