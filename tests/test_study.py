"""The cross-dataset study along the user's path: methods -> configs -> trainer -> table, the
nucleus-feature reference, the scale shortcut and the domain embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from aecnn_utils.data.explore import ZOOM_SOURCES, image_statistics, scale_shortcut
from aecnn_utils.data.loaders import CellDataset, make_loader
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.segment import NUCLEUS_FEATURES
from aecnn_utils.data.transforms import build_eval_transform
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.domain import (
    domain_separability,
    embed_2d,
    penultimate_features,
    run_features,
)
from aecnn_utils.experiments.morphology import FEATURES_VERSION, NAME, fit_reference
from aecnn_utils.experiments.study import (
    METHODS,
    PROCEDURE,
    REFERENCE,
    optimism,
    study_comparisons,
    study_grid,
    study_words,
)
from aecnn_utils.models import build_model
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.prepare import prepare_data


def study_config(profile: str, method: str, setting: str = "cross",
                 seeds: list[int] | None = None) -> object:
    """One method's config, as the study's grid trains it."""
    grid = study_grid(profile, [method], settings=(setting,), reference=False, seeds=seeds)
    return grid.config(grid.arm(method), "", setting)


def _tiny(root: Path) -> dict:
    return {"data_root": str(root), "image_size": 48, "epochs": 1, "batch_size": 16,
            "n_boot": 20, "num_workers": 0}


def test_study_grid_trains_each_method_in_both_settings_and_words_it(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """study grid -> trainer -> records -> words: a transductive method is marked and never a
    candidate of the procedure; the optimism table compares the nested figure with the choice
    made on all cells; a second call reuses every run."""
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    methods = ["plain", "input: grey", "test: AdaBN"]
    grid = study_grid("smoke", methods)
    assert [a.name for a in grid.arms] == [*methods, PROCEDURE, REFERENCE]
    assert list(grid.arm(PROCEDURE).candidates) == ["plain", "input: grey"]
    assert grid.arm("test: AdaBN").transductive
    runs = G.run_grid(grid, tmp_path / "runs", progress=False, **_tiny(synthetic_root))
    for setting in ("cross", "in_domain"):
        assert runs[setting, "test: AdaBN", ""][0].config.adapt_bn
        assert (runs[setting, "plain", ""][0].config.protocol == "within") == \
            (setting == "in_domain")
    result = G.score_grid(grid, runs, G.grid_data(grid, **_tiny(synthetic_root)))
    comparisons = study_comparisons(result)
    assert {(c.first, c.second) for c in comparisons} == {
        (m, "plain") for m in ["input: grey", "test: AdaBN", PROCEDURE, REFERENCE]}
    text = study_words(result, comparisons)
    plain = result.estimate("plain", "roc_auc")
    assert text.startswith(f"- plain: AUC {W.cell(plain)} across datasets")
    arms = ", ".join([*methods, PROCEDURE, REFERENCE])
    assert f"- Trained on (across datasets) cpu: {arms}." in text
    table = optimism(result).set_index("metric")
    e = result.estimate(PROCEDURE, "roc_auc")
    assert table.loc["roc_auc", "nested"] == e.value
    assert table.loc["roc_auc", "optimism"] == pytest.approx(e.all_cells - e.value)
    assert table.loc["roc_auc", "most_chosen"] in ("plain", "input: grey")
    feats = run_features(runs["cross", "plain", ""][0],
                         {"train": np.array([0, 2, 4]), "pool": np.array([1, 3])})
    assert feats.shape[0] == 5 and np.isfinite(feats).all()
    again = G.run_grid(grid, tmp_path / "runs", progress=False, **_tiny(synthetic_root))
    assert all(r.reused for rs in again.values() for r in rs)


def test_study_configs_train_the_grids_seeds_across_datasets() -> None:
    """The cpu profile trains every method with three seeds across datasets (one seed's noise
    is as large as the effects), one in-domain."""
    assert study_config("cpu", "plain").seeds == G.CROSS_SEEDS["cpu"] != (0,)
    assert study_config("cpu", "plain", "in_domain").seeds == (0,)
    assert study_config("cpu", "plain", seeds=[4]).seeds == (4,)


def test_every_method_is_a_valid_config() -> None:
    for method in METHODS:
        for setting in ("cross", "in_domain"):
            study_config("cpu", method, setting)
    with pytest.raises(ValueError, match="method='dropout' is not valid"):
        study_config("cpu", "dropout")
    with pytest.raises(ValueError, match="setting 'lab' is not valid"):
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
    from aecnn_utils.__main__ import main
    from aecnn_utils.training import tuned

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
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
    assert main([*argv, "--settings", "cross", "--no-reference", "--dry-run",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "input: grey" in out and REFERENCE not in out
    # the table at 0.5 and the one at each split's chosen threshold, each caption saying which
    at_half = (tmp_path / "out" / "study.md").read_text()
    chosen = (tmp_path / "out" / "study_val_threshold.md").read_text()
    assert "Bal. acc. at the threshold 0.5" in at_half and "Sens. " in at_half
    assert "at the threshold each run chose on its split's selection half" in chosen
    assert "Specificity" in chosen and "threshold 0.5" not in chosen
    with pytest.raises(SystemExit):
        main(["study", "--methods", "dropout"])
