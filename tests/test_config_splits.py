"""Run configuration (profiles, validation, persistence) and leak-free splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.splits import group_folds, grouped_split
from aecnn_utils.training.config import PROFILE_NAMES, ConfigError, RunConfig, profile_config
from aecnn_utils.training.prepare import make_splits


def test_paper_profile_is_section_4() -> None:
    c = profile_config("paper")
    assert (c.image_size, c.batch_size, c.epochs, c.patience) == (224, 32, 150, 20)
    assert (c.optimizer, c.momentum, c.weight_decay, c.lr, c.schedule) == \
        ("sgd", 0.9, 1e-4, 1e-3, "cosine")
    assert c.seeds == (0, 1, 2, 3, 4)
    assert (c.train, c.val, c.test, c.scheme) == (("sipakmed",), ("herlev",), ("cric",), "binary")
    assert profile_config("smoke").image_size == 64
    assert PROFILE_NAMES == ("smoke", "cpu", "paper")


def test_config_roundtrip_yaml_and_json(tmp_path: Path) -> None:
    c = profile_config("cpu", model="resnet50", seeds=(1, 2))
    assert RunConfig.load(c.save(tmp_path / "config.yaml")) == c
    (tmp_path / "c.json").write_text(__import__("json").dumps(c.to_dict()))
    assert RunConfig.load(tmp_path / "c.json") == c


def test_fingerprint_ignores_device_but_not_hyperparameters_or_data() -> None:
    c = profile_config("smoke")
    assert c.replace(device="cpu").fingerprint() == c.fingerprint()
    assert c.replace(lr=0.1).fingerprint() != c.fingerprint()
    assert c.run_id("d1").startswith("aecnn_sipakmed-herlev-cric_s0_")
    assert c.replace(seed=3).run_id("d1") != c.run_id("d1")
    assert c.run_id("d1") != c.run_id("d2")  # changed data: a new run folder
    assert c.replace(device="cpu").run_id("d1") == c.run_id("d1")


@pytest.mark.parametrize(("changes", "match"), [
    ({"train": ("herlev",), "val": ("herlev",)}, "overlap"),
    ({"scheme": "native"}, "native"),
    ({"protocol": "within", "train": ("sipakmed", "herlev")}, "splits one dataset"),
    ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr=-1.0 is not valid: it must be > 0"),
    ({"image_size": 16}, "image_size"),
    ({"fold": 5, "n_folds": 5}, "fold"),
])
def test_bad_configs_are_named(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        profile_config("smoke", **changes)


def test_unknown_field_and_profile() -> None:
    with pytest.raises(ConfigError, match="unknown config field.*learning_rate"):
        profile_config("smoke", learning_rate=0.1)
    with pytest.raises(ConfigError, match="profile='gpu' is not valid; choose one of: smoke"):
        profile_config("gpu")


def _frame(n_groups: int, per_group: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_groups)
    rows = [{"path": f"{g}_{i}", "dataset": "herlev", "source_class": "x",
             "label": int(labels[g]), "label_name": ["normal", "abnormal"][labels[g]],
             "patient_or_slide": f"g{g}"} for g in range(n_groups) for i in range(per_group)]
    return pd.DataFrame(rows)


def test_group_folds_keep_groups_whole_and_stratify() -> None:
    df = _frame(60)
    folds = group_folds(df, 5, seed=0)
    assert df.assign(f=folds).groupby("patient_or_slide")["f"].nunique().max() == 1
    per_fold = df.assign(f=folds).groupby("f")["label"].mean()
    assert per_fold.max() - per_fold.min() < 0.25
    assert np.array_equal(folds, group_folds(df, 5, seed=0))
    with pytest.raises(ConfigError, match="cannot make 5 grouped folds from 3 groups"):
        group_folds(_frame(3), 5, seed=0)


def test_grouped_split_fraction() -> None:
    df = _frame(100)
    rest, part = grouped_split(df, 0.25, seed=1)
    assert len(rest) + len(part) == len(df)
    assert abs(len(part) / len(df) - 0.25) < 0.06
    assert not set(rest["patient_or_slide"]) & set(part["patient_or_slide"])
    with pytest.raises(ConfigError, match="fraction"):
        grouped_split(df, 1.0, seed=0)


def test_protocols_on_synthetic(synthetic_root: Path) -> None:
    frames = {n: scan_dataset(n, synthetic_root / n) for n in ("sipakmed", "herlev", "cric")}
    cross = make_splits(profile_config("smoke"), frames)
    assert set(cross.train["dataset"]) == {"sipakmed"} and set(cross.test["dataset"]) == {"cric"}
    halves = make_splits(profile_config("smoke", test=("herlev",)), frames)
    assert not set(halves.val["patient_or_slide"]) & set(halves.test["patient_or_slide"])
    assert len(halves.val) + len(halves.test) == len(frames["herlev"])
    within = make_splits(profile_config("smoke", protocol="within", train=("sipakmed",),
                                        val_fraction=0.2, test_fraction=0.2), frames)
    groups = [set(s["patient_or_slide"]) for s in (within.train, within.val, within.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(within.sizes().values()) == len(frames["sipakmed"])
    tests = []
    for k in range(3):
        s = make_splits(profile_config("smoke", protocol="kfold", train=("herlev",),
                                       n_folds=3, fold=k), frames)
        assert not set(s.train["patient_or_slide"]) & set(s.test["patient_or_slide"])
        tests.append(set(s.test["path"]))
    assert set.union(*tests) == set(frames["herlev"]["path"])
    assert not tests[0] & tests[1]


def test_val_class_missing_from_train_is_refused(synthetic_root: Path) -> None:
    frames = {n: scan_dataset(n, synthetic_root / n, scheme="three_tier")
              for n in ("sipakmed", "herlev")}
    config = profile_config("smoke", scheme="three_tier", test=("herlev",))
    with pytest.raises(ConfigError, match="has class\\(es\\) high_grade that the training set"):
        make_splits(config, frames)


def test_missing_dataset_is_refused(synthetic_root: Path) -> None:
    frames = {"sipakmed": scan_dataset("sipakmed", synthetic_root / "sipakmed")}
    with pytest.raises(ConfigError, match=r"herlev are not available; available: sipakmed"):
        make_splits(profile_config("smoke"), frames)
