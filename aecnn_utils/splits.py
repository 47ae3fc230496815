"""Leak-free splits: grouped (by cluster, slide or field image) and stratified (by label).

Cells of one group look alike (same slide, stain and focus), so a group must never straddle
train and test. Every split here keeps groups whole (scikit-learn's ``StratifiedGroupKFold``)
and keeps label proportions as close as the groups allow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .config import ConfigError, RunConfig
from .data.errors import DataWarning


@dataclass(frozen=True)
class Splits:
    """Reader rows of the train, validation and test sets (each with a ``split`` column)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        """Cells per split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def table(self) -> pd.DataFrame:
        """Cells per split, dataset and label (for notebooks and run folders)."""
        both = pd.concat([self.train, self.val, self.test], ignore_index=True)
        return (both.groupby(["split", "dataset", "label_name"], sort=False).size()
                .rename("n_cells").reset_index())


def group_folds(df: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) of every row: grouped by ``patient_or_slide``, stratified by
    ``label``, shuffled deterministically by ``seed``."""
    groups = df["patient_or_slide"].astype(str).to_numpy()
    n_groups = len(set(groups))
    if n_groups < n_folds:
        raise ConfigError(f"cannot make {n_folds} grouped folds from {n_groups} groups "
                          f"({len(df)} cells); use fewer folds or more data")
    folds = np.empty(len(df), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on tiny sets
        for k, (_, test_idx) in enumerate(splitter.split(np.zeros(len(df)), df["label"], groups)):
            folds[test_idx] = k
    return folds


def grouped_split(df: pd.DataFrame, fraction: float, seed: int,
                  resolution: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (rest, part), ``part`` holding about ``fraction`` of the cells.

    The data is cut into ``resolution`` grouped, stratified folds (fewer if there are fewer
    groups) and ``part`` takes ``round(fraction * folds)`` of them (at least one, never all).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
    # StratifiedGroupKFold needs at least one class with a member in every fold
    n_folds = min(resolution, df["patient_or_slide"].nunique(),
                  int(df["label"].value_counts().max()))
    folds = group_folds(df, n_folds, seed)
    take = min(n_folds - 1, max(1, round(fraction * n_folds)))
    mask = folds < take
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


def draw_cells(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """About ``n`` cells of ``df`` (all of them for ``n`` 0 or more than it holds), whole
    slides (``patient_or_slide``), each class near its share: slides in a ``seed``-shuffled
    order are taken while the total stays within ``n`` and every class within its share of
    ``n`` (rounded up); at least one slide."""
    if not 0 < n < len(df):
        return df.reset_index(drop=True)
    counts = df.groupby(["patient_or_slide", "label"]).size().unstack(fill_value=0)
    quota = np.ceil(df["label"].value_counts(normalize=True)[counts.columns].to_numpy() * n)
    have, keep = np.zeros(len(counts.columns)), []
    order = np.random.default_rng(seed).permutation(counts.index.to_numpy())
    for slide in order:
        add = counts.loc[slide].to_numpy()
        if have.sum() + add.sum() <= n and (have + add <= quota).all():
            keep.append(slide)
            have += add
    if not keep:  # every slide overshoots: the smallest one
        keep = [min(order, key=lambda slide: counts.loc[slide].sum())]
    return df[df["patient_or_slide"].isin(keep)].reset_index(drop=True)


def make_splits(config: RunConfig, frames: dict[str, pd.DataFrame]) -> Splits:
    """Assign reader rows to train/val/test as ``config.protocol`` says; check the result.

    Raises:
        ConfigError: a split is empty, or validation/test holds a class the training set lacks.
    """
    def cat(names: tuple[str, ...]) -> pd.DataFrame:
        missing = [n for n in names if n not in frames]
        if missing:
            raise ConfigError(f"dataset(s) {', '.join(missing)} are not available; "
                              f"available: {', '.join(frames)}")
        return pd.concat([frames[n] for n in names], ignore_index=True)

    seed = config.split_seed
    if config.protocol == "cross":
        train = cat(config.train)
        if set(config.val) == set(config.test):
            test, val = grouped_split(cat(config.val), config.val_fraction, seed)
        else:
            val, test = cat(config.val), cat(config.test)
    elif config.protocol == "within":
        rest, test = grouped_split(draw_cells(cat(config.train), config.train_cells, seed),
                                   config.test_fraction, seed)
        train, val = grouped_split(rest, config.val_fraction / (1 - config.test_fraction), seed)
    elif config.protocol == "adapt":  # the halves of `cross`; labelled cells from one of them
        test, pool = grouped_split(cat(config.test), config.val_fraction, seed)
        labelled = draw_cells(pool, config.train_cells, seed)
        # the selection slides drawn like the labelled ones: each class near its share, so
        # that few labelled cells still leave every class to train on
        val = draw_cells(labelled, max(1, round(config.select_fraction * len(labelled))), seed)
        own = labelled[~labelled["path"].isin(set(val["path"]))].reset_index(drop=True)
        others = tuple(d for d in config.train if d not in config.test)
        train = pd.concat([cat(others), own], ignore_index=True) if others else own
    else:  # kfold
        data = cat(config.train)
        folds = group_folds(data, config.n_folds, seed)
        test = data[folds == config.fold].reset_index(drop=True)
        train, val = grouped_split(data[folds != config.fold].reset_index(drop=True),
                                   1 / (config.n_folds - 1), seed)
    splits = Splits(train.assign(split="train"), val.assign(split="val"),
                    test.assign(split="test"))
    check_splits(splits)
    return splits


def check_splits(splits: Splits) -> None:
    """Refuse empty splits, shared groups, and val/test classes absent from training."""
    for name, df in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(df) == 0:
            raise ConfigError(f"the {name} split is empty")
    train_labels = set(splits.train["label_name"])
    for name, df in (("val", splits.val), ("test", splits.test)):
        extra = sorted(set(df["label_name"]) - train_labels)
        if extra:
            raise ConfigError(f"the {name} set has class(es) {', '.join(extra)} that the "
                              "training set lacks; the model cannot learn them. Choose another "
                              "label scheme or datasets.")
        if df["label"].nunique() < 2:
            warnings.warn(f"the {name} set holds a single class: AUC is undefined there",
                          DataWarning, stacklevel=2)
        shared = set(splits.train["patient_or_slide"]) & set(df["patient_or_slide"])
        same_data = set(splits.train["dataset"]) & set(df["dataset"])
        if shared and same_data:
            raise ConfigError(f"groups {sorted(shared)[:3]} are in both train and {name}")
    if set(splits.val["dataset"]) & set(splits.test["dataset"]):
        shared = set(splits.val["patient_or_slide"]) & set(splits.test["patient_or_slide"])
        if shared:
            raise ConfigError(f"groups {sorted(shared)[:3]} are in both val and test")
