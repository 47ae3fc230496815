"""Figures of the data and of the model before training (notebooks 01 and 02): label counts,
sample cells, image statistics, augmentations, attention maps and model complexity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from aecnn_utils.data.cache import load_cell, row_box, square_resize
from aecnn_utils.data.explore import sample_rows
from aecnn_utils.data.taxonomy import DATASET_LABELS
from aecnn_utils.experiments.tune import arm_label
from aecnn_utils.reporting.plots import blank_axis, finish


def plot_label_counts(counts: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Bars of cells per label, one panel per (scheme, dataset); input from ``label_counts``."""
    schemes = list(dict.fromkeys(counts["scheme"]))
    datasets = list(dict.fromkeys(counts["dataset"]))
    fig, axes = plt.subplots(len(schemes), len(datasets), squeeze=False,
                             figsize=(4.2 * len(datasets), 2.6 * len(schemes)))
    for i, scheme in enumerate(schemes):
        for j, name in enumerate(datasets):
            ax = axes[i][j]
            sub = counts[(counts["scheme"] == scheme) & (counts["dataset"] == name)]
            sns.barplot(data=sub, y="label_name", x="n_cells", ax=ax, color=f"C{j}")
            for container in ax.containers:
                ax.bar_label(container, fontsize=8, padding=2)
            ax.set_title(f"{DATASET_LABELS.get(name, name)}, {scheme.replace('_', '-')} labels",
                         fontsize=10)
            ax.set(xlabel="cells" if i == len(schemes) - 1 else "", ylabel="")
            ax.tick_params(axis="y", labelsize=8)
    return finish(fig, notice)


def plot_sample_grid(df: pd.DataFrame, per_class: int = 6, size: int = 96, seed: int = 0,
                     title: str | None = None, notice: str | None = None) -> plt.Figure:
    """A row of random sample cells per class (padded to square, not stretched)."""
    rows = sample_rows(df, per_class, seed)
    classes = list(dict.fromkeys(rows["source_class"]))
    fig, axes = plt.subplots(len(classes), per_class, squeeze=False,
                             figsize=(1.25 * per_class + 1.8, 1.3 * len(classes)))
    for i, cls in enumerate(classes):
        sub = rows[rows["source_class"] == cls]
        for j in range(per_class):
            ax = axes[i][j]
            blank_axis(ax)
            if j < len(sub):
                row = sub.iloc[j]
                ax.imshow(square_resize(load_cell(row.path, row_box(row)), size))
            else:
                ax.axis("off")
            if j == 0:
                label = sub.iloc[0]["label_name"]
                ax.set_ylabel(f"{cls}\n({label})" if label != cls else cls, rotation=0,
                              ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return finish(fig, notice)


def plot_image_statistics(stats: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Image sizes (width vs height) and mean colour per class, one colour per dataset."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    stats = stats.assign(dataset=stats["dataset"].map(lambda d: DATASET_LABELS.get(d, d)))
    sns.scatterplot(data=stats.rename(columns={"label_name": "class"}), x="width", y="height",
                    hue="dataset", style="class", ax=axes[0], s=18, alpha=0.7)
    axes[0].set_title("image size (pixels)")
    long = stats.melt(id_vars=["dataset"], value_vars=["mean_r", "mean_g", "mean_b"],
                      var_name="channel", value_name="mean intensity")
    long["channel"] = long["channel"].str[-1].str.upper()
    sns.boxplot(data=long, x="channel", y="mean intensity", hue="dataset", ax=axes[1],
                fliersize=1)
    axes[1].set_title("mean colour per image")
    sns.boxplot(data=stats, y="source_class", x="dark_fraction", hue="dataset", ax=axes[2],
                fliersize=1, dodge=False)
    axes[2].set(title="share of dark pixels (< 100)", ylabel="", xlabel="share of the image")
    axes[2].tick_params(axis="y", labelsize=7)
    return finish(fig, notice)


def _image_rows(images: Sequence[np.ndarray], first: str, titles: Sequence[str],
                draw: Callable[[plt.Axes, int, int, np.ndarray], None],
                cell: tuple[float, float]) -> plt.Figure:
    """A row per image: the image under ``first``, then a panel per title drawn by
    ``draw(ax, row, column, image)`` (columns from 1); titles on the first row only."""
    fig, axes = plt.subplots(len(images), len(titles) + 1, squeeze=False,
                             figsize=(cell[0] * (len(titles) + 1), cell[1] * len(images)))
    for i, image in enumerate(images):
        axes[i][0].imshow(image)
        for j, title in enumerate([first, *titles]):
            if j:
                draw(axes[i][j], i, j, image)
            if i == 0:
                axes[i][j].set_title(title, fontsize=9)
            blank_axis(axes[i][j])
    return fig


def plot_augmentations(images: Sequence[np.ndarray], pipelines: dict[str, object],
                       seed: int = 0, notice: str | None = None) -> plt.Figure:
    """Each sample cell (rows) under each augmentation pipeline (columns), seeded."""
    names = list(pipelines)

    def draw(ax: plt.Axes, i: int, j: int, image: np.ndarray) -> None:
        pipe = pipelines[names[j - 1]]
        pipe.set_random_seed(seed + i)
        ax.imshow(pipe(image=image)["image"])

    return finish(_image_rows(images, "original", names, draw, (1.6, 1.7)), notice)


def plot_attention_maps(images: Sequence[np.ndarray],
                        maps: dict[str, dict[str, dict[str, object]]],
                        notice: str | None = None, alpha: float = 0.5) -> plt.Figure:
    """Spatial attention (Eq. 3) of each stage overlaid on each cell.

    Args:
        images: the RGB cells (``H x W x 3`` uint8) that were fed to the model(s).
        maps: ``{label: attention_maps(model, batch)}``, e.g. ``{"untrained": ..., "trained":
            ...}``; every stage with a spatial map gets a column per label.
    """
    columns = [(label, stage) for label, per_stage in maps.items()
               for stage, kinds in per_stage.items() if "spatial" in kinds]

    def draw(ax: plt.Axes, i: int, j: int, image: np.ndarray) -> None:
        label, stage = columns[j - 1]
        sa = np.asarray(maps[label][stage]["spatial"][i, 0].float().cpu(), np.float32)
        heat = cv2.resize(sa, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        ax.imshow(image)
        ax.imshow(heat, cmap="magma", alpha=alpha, vmin=0, vmax=1)

    titles = [f"{label}\n{stage}" for label, stage in columns]
    return finish(_image_rows(images, "cell", titles, draw, (1.8, 1.9)), notice)


def plot_complexity(table: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Parameters and GMACs per model (log scale), from ``complexity_table``."""
    data = table.assign(label=table["model"].map(arm_label))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 * len(data) + 1.2))
    for ax, col, title in ((axes[0], "params_M", "parameters (millions)"),
                           (axes[1], "GMACs", f"GMACs at {data['input'].iloc[0]}")):
        sns.barplot(data=data, y="label", x=col, ax=ax, hue="label", legend=False)
        ax.set_xscale("log")
        for container in ax.containers:
            ax.bar_label(container, fmt="%.3g", fontsize=9, padding=2)
        ax.set(title=title, xlabel="", ylabel="")
    return finish(fig, notice)
