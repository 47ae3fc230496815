"""Statistics for the data-exploration notebook: label counts per scheme, image sizes, colour."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aecnn_utils.data import taxonomy
from aecnn_utils.data.cache import load_cell, row_box, square_resize
from aecnn_utils.data.segment import nucleus_features, segment
from aecnn_utils.data.transforms import AugmentConfig, single_augmentations


def label_counts(frames: dict[str, pd.DataFrame],
                 schemes: Iterable[str] = taxonomy.SCHEMES) -> pd.DataFrame:
    """Cells per dataset, label scheme and label: columns dataset, scheme, label_name, n_cells.

    ``frames`` are reader tables under a scheme that keeps every cell (``binary`` or
    ``native``); each cell's ``source_class`` is mapped into every scheme. Classes without a
    mapping in a scheme (SIPaKMeD Dyskeratotic under ``three_tier``) appear as ``(excluded)``,
    so that every scheme accounts for every cell.
    """
    rows = []
    for scheme in schemes:
        for name, df in frames.items():
            labels = [taxonomy.map_label(name, c, scheme) or "(excluded)"
                      for c in df["source_class"]]
            for label, n in pd.Series(labels).value_counts(sort=False).items():
                rows.append({"dataset": name, "scheme": scheme, "label_name": label,
                             "n_cells": int(n)})
    return pd.DataFrame(rows)


def sample_rows(df: pd.DataFrame, per_class: int, seed: int = 0,
                by: str = "source_class") -> pd.DataFrame:
    """Up to ``per_class`` random rows of each class (deterministic by seed), in class order."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    parts = [g.sample(n=min(per_class, len(g)), random_state=seed)
             for _, g in df.groupby(by, sort=False)]
    return pd.concat(parts).reset_index(drop=True)


def image_statistics(df: pd.DataFrame, max_per_class: int | None = 60, seed: int = 0,
                     progress: bool = True) -> pd.DataFrame:
    """Size and colour of each (sampled) cell at its original resolution.

    Columns: dataset, source_class, label_name, width, height, mean_r/g/b (0..255),
    ``dark_fraction``, the share of pixels darker than 100 grey levels, and, from the simple
    segmentation (:mod:`aecnn_utils.data.segment`), ``cell_extent`` (the longer side of the
    cell's bounding box) and ``nucleus_diameter`` (equivalent-circle), in source pixels.
    """
    rows = sample_rows(df, max_per_class, seed) if max_per_class else df.reset_index(drop=True)
    out = []
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc="image statistics",
                    disable=not progress, leave=False):
        image = load_cell(row.path, row_box(row))
        grey = image.mean(axis=2)
        mean = image.reshape(-1, 3).mean(axis=0)
        seg = segment(image)
        ys, xs = np.nonzero(seg.cell)
        out.append({"dataset": row.dataset, "source_class": row.source_class,
                    "label_name": row.label_name, "width": image.shape[1],
                    "height": image.shape[0], "mean_r": mean[0], "mean_g": mean[1],
                    "mean_b": mean[2], "dark_fraction": float((grey < 100).mean()),
                    "cell_extent": int(max(np.ptp(xs), np.ptp(ys)) + 1),
                    "nucleus_diameter": seg.nucleus_diameter})
    return pd.DataFrame(out)


#: What sets the zoom of the cell the model sees, per ``resize_mode``: every crop is resized
#: so that this length (source pixels) fills the frame.
ZOOM_SOURCES: dict[str, str] = {"pad": "crop side", "cell": "cell extent",
                                "nucleus": "nucleus diameter"}


def scale_shortcut(stats: pd.DataFrame) -> pd.DataFrame:
    """How well the zoom alone predicts "abnormal", per dataset and ``resize_mode``.

    The model cannot see a crop's size in pixels, only the zoom its resizing applies: with
    ``pad`` the crop's longer side, with ``cell`` the cell's extent, with ``nucleus`` the
    nucleus diameter fill the frame. An AUC far from 0.5 in the training set is a cue the
    model can use; if the same cue has another AUC (or the other sign) in a test set, it does
    not transfer. Columns: dataset, resize_mode, zoom_source, n, auc (larger length ->
    abnormal).
    """
    from sklearn.metrics import roc_auc_score

    length = {"pad": stats[["width", "height"]].max(axis=1), "cell": stats["cell_extent"],
              "nucleus": stats["nucleus_diameter"]}
    rows = []
    for dataset, group in stats.groupby("dataset", sort=False):
        y = (group["label_name"] == "abnormal").to_numpy()
        for mode, source in ZOOM_SOURCES.items():
            auc = roc_auc_score(y, length[mode][group.index]) if 0 < y.sum() < len(y) \
                else np.nan
            rows.append({"dataset": dataset, "resize_mode": mode, "zoom_source": source,
                         "n": len(group), "auc": float(auc)})
    return pd.DataFrame(rows)


def summarize_statistics(stats: pd.DataFrame) -> pd.DataFrame:
    """Median size and mean colour per dataset and class (a compact table for the notebook)."""
    return (stats.groupby(["dataset", "source_class"], sort=False)
            .agg(n=("width", "size"), median_width=("width", "median"),
                 median_height=("height", "median"), mean_r=("mean_r", "mean"),
                 mean_g=("mean_g", "mean"), mean_b=("mean_b", "mean"),
                 dark_fraction=("dark_fraction", "mean"),
                 median_cell_extent=("cell_extent", "median"),
                 median_nucleus_diameter=("nucleus_diameter", "median"))
            .round(2).reset_index())


def elastic_irregularity(df: pd.DataFrame, size: int, aug: AugmentConfig | None = None,
                         per_class: int = 30, repeats: int = 3, seed: int = 0,
                         progress: bool = True) -> pd.DataFrame:
    """Does the elastic augmentation invent irregular nuclear outlines?

    For sample cells of each class at the model's ``size``: the nucleus irregularity (1 -
    solidity, :func:`aecnn_utils.data.segment.nucleus_features`) before, and its mean over
    ``repeats`` elastic deformations at the strength of ``aug`` (probability 1). An outline as
    ragged as the abnormal classes' on normal cells would teach a false cue.
    Columns: dataset, source_class, label_name, before, after.
    """
    elastic = single_augmentations(size, aug)["elastic"]
    reseed = np.random.default_rng(seed)
    elastic.set_random_seed(int(reseed.integers(2**31)))
    rows = []
    sample = sample_rows(df, per_class, seed)
    for row in tqdm(sample.itertuples(index=False), total=len(sample), disable=not progress,
                    desc="elastic check", leave=False):
        image = square_resize(load_cell(row.path, row_box(row)), size)
        after = [nucleus_features(elastic(image=image)["image"])["irregularity"]
                 for _ in range(repeats)]
        rows.append({"dataset": row.dataset, "source_class": row.source_class,
                     "label_name": row.label_name,
                     "before": nucleus_features(image)["irregularity"],
                     "after": float(np.mean(after))})
    return pd.DataFrame(rows)
