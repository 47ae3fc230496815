"""Statistics for the data-exploration notebook: label counts per scheme, image sizes, colour."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import taxonomy
from .cache import load_cell, row_box


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

    Columns: dataset, source_class, label_name, width, height, mean_r/g/b (0..255), and
    ``dark_fraction``, the share of pixels darker than 100 grey levels (a crude proxy for
    nucleus area and hyperchromasia).
    """
    rows = sample_rows(df, max_per_class, seed) if max_per_class else df.reset_index(drop=True)
    out = []
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc="image statistics",
                    disable=not progress, leave=False):
        image = load_cell(row.path, row_box(row))
        grey = image.mean(axis=2)
        mean = image.reshape(-1, 3).mean(axis=0)
        out.append({"dataset": row.dataset, "source_class": row.source_class,
                    "label_name": row.label_name, "width": image.shape[1],
                    "height": image.shape[0], "mean_r": mean[0], "mean_g": mean[1],
                    "mean_b": mean[2], "dark_fraction": float((grey < 100).mean())})
    return pd.DataFrame(out)


def summarize_statistics(stats: pd.DataFrame) -> pd.DataFrame:
    """Median size and mean colour per dataset and class (a compact table for the notebook)."""
    return (stats.groupby(["dataset", "source_class"], sort=False)
            .agg(n=("width", "size"), median_width=("width", "median"),
                 median_height=("height", "median"), mean_r=("mean_r", "mean"),
                 mean_g=("mean_g", "mean"), mean_b=("mean_b", "mean"),
                 dark_fraction=("dark_fraction", "mean"))
            .round(2).reset_index())
