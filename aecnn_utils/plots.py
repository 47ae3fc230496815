"""Figures for the notebooks: one consistent seaborn style, PNG + PDF output, written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data.cache import load_cell, row_box, square_resize
from .data.explore import sample_rows
from .io import atomic_path

DATASET_LABELS = {"sipakmed": "SIPaKMeD", "herlev": "Herlev", "cric": "CRIC"}


def set_style() -> None:
    """The kit's figure style: seaborn 'whitegrid', paper context, readable fonts, 150 dpi."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.2, palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "pdf.fonttype": 42})


def add_notice(fig: plt.Figure, notice: str | None) -> None:
    """Stamp the data provenance (e.g. the synthetic-data warning) under the figure."""
    if notice:
        fig.text(0.5, -0.01, notice, ha="center", va="top", fontsize=9, color="firebrick",
                 style="italic")


def save_figure(fig: plt.Figure, stem: str | Path,
                formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (atomically); return the written paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt)
        written.append(target)
    return written


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
            ax.set_title(f"{DATASET_LABELS.get(name, name)} - {scheme}", fontsize=10)
            ax.set_xlabel("cells" if i == len(schemes) - 1 else "")
            ax.set_ylabel("")
            ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


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
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
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
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


def plot_image_statistics(stats: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Image sizes (width vs height) and mean colour per class, one colour per dataset."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    sns.scatterplot(data=stats, x="width", y="height", hue="dataset", style="label_name",
                    ax=axes[0], s=18, alpha=0.7)
    axes[0].set_title("image size (pixels)")
    long = stats.melt(id_vars=["dataset"], value_vars=["mean_r", "mean_g", "mean_b"],
                      var_name="channel", value_name="mean intensity")
    long["channel"] = long["channel"].str[-1].str.upper()
    sns.boxplot(data=long, x="channel", y="mean intensity", hue="dataset", ax=axes[1],
                fliersize=1)
    axes[1].set_title("mean colour per image")
    sns.boxplot(data=stats, y="source_class", x="dark_fraction", hue="dataset", ax=axes[2],
                fliersize=1, dodge=False)
    axes[2].set_title("share of dark pixels (< 100)")
    axes[2].set_ylabel("")
    axes[2].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


def plot_augmentations(images: Sequence[np.ndarray], pipelines: dict[str, object],
                       seed: int = 0, notice: str | None = None) -> plt.Figure:
    """Each sample cell (rows) under each augmentation pipeline (columns), seeded."""
    names = list(pipelines)
    fig, axes = plt.subplots(len(images), len(names) + 1, squeeze=False,
                             figsize=(1.6 * (len(names) + 1), 1.7 * len(images)))
    for i, image in enumerate(images):
        axes[i][0].imshow(image)
        if i == 0:
            axes[i][0].set_title("original", fontsize=9)
        for j, name in enumerate(names, start=1):
            pipe = pipelines[name]
            pipe.set_random_seed(seed + i)
            axes[i][j].imshow(pipe(image=image)["image"])
            if i == 0:
                axes[i][j].set_title(name, fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


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
    fig, axes = plt.subplots(len(images), len(columns) + 1, squeeze=False,
                             figsize=(1.8 * (len(columns) + 1), 1.9 * len(images)))
    for i, image in enumerate(images):
        axes[i][0].imshow(image)
        if i == 0:
            axes[i][0].set_title("cell", fontsize=9)
        for j, (label, stage) in enumerate(columns, start=1):
            sa = np.asarray(maps[label][stage]["spatial"][i, 0].float().cpu(), np.float32)
            heat = cv2.resize(sa, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            axes[i][j].imshow(image)
            axes[i][j].imshow(heat, cmap="magma", alpha=alpha, vmin=0, vmax=1)
            if i == 0:
                axes[i][j].set_title(f"{label}\n{stage}", fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


MODEL_LABELS = {"aecnn": "AECNN (ours)", "resnet50": "ResNet-50",
                "efficientnet_b3": "EfficientNet-B3", "mobilenet_v3_small": "MobileNetV3-Small"}


def plot_complexity(table: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Parameters and GMACs per model (log scale), from ``complexity_table``."""
    data = table.assign(label=table["model"].map(lambda m: MODEL_LABELS.get(m, m)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 * len(data) + 1.2))
    for ax, col, title in ((axes[0], "params_M", "parameters (millions)"),
                           (axes[1], "GMACs", f"GMACs at {data['input'].iloc[0]}")):
        sns.barplot(data=data, y="label", x=col, ax=ax, hue="label", legend=False)
        ax.set_xscale("log")
        for container in ax.containers:
            ax.bar_label(container, fmt="%.3g", fontsize=9, padding=2)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    add_notice(fig, notice)
    return fig


def plot_training_curves(histories: dict[str, pd.DataFrame],
                         notice: str | None = None) -> plt.Figure:
    """Per-epoch training and validation loss and validation AUC, one colour per run."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k, (label, h) in enumerate(histories.items()):
        color = f"C{k}"
        name = MODEL_LABELS.get(label, label)
        axes[0].plot(h["epoch"], h["train_loss"], color=color, label=name)
        axes[1].plot(h["epoch"], h["val_loss"], color=color, label=name)
        axes[2].plot(h["epoch"], h["val_auc"], color=color, marker="o", ms=3, label=name)
    for ax, title in zip(axes, ("training loss", "validation loss", "validation AUC"),
                         strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].set_ylim(0, 1.02)
    axes[0].legend()
    fig.tight_layout()
    add_notice(fig, notice)
    return fig
