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

from aecnn_utils.core.errors import ConfigError
from aecnn_utils.data.errors import DataWarning


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
