"""Figures of the results (notebooks 03-09; the data's and the model's: ``data_plots``) and
every figure's shared steps: one style, the provenance notice, PNG + PDF written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

from aecnn_utils.core.io import atomic_path
from aecnn_utils.data.cache import load_cell, row_box, square_resize
from aecnn_utils.data.explore import sample_rows
from aecnn_utils.data.taxonomy import DATASET_LABELS
from aecnn_utils.experiments.paired import Comparison
from aecnn_utils.experiments.tune import arm_label
from aecnn_utils.experiments.wording import SETTING_WORDS, metric_label

if TYPE_CHECKING:
    from aecnn_utils.experiments.explain import Explained


def set_style() -> None:
    """The kit's figure style: seaborn 'whitegrid', paper context, readable fonts, 150 dpi."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.2, palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "pdf.fonttype": 42})


def blank_axis(ax: plt.Axes) -> None:
    """No ticks and no grid: for image panels."""
    ax.set(xticks=[], yticks=[])
    ax.grid(False)


def outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int],
            width: int = 1) -> np.ndarray:
    """A copy of an RGB image with the outer contour of ``mask`` drawn on it."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(image.copy(), contours, -1, colour, width)


def finish(fig: plt.Figure, notice: str | None, tight: bool = True) -> plt.Figure:
    """Every plot's last step: tight layout (unless the figure lays itself out), the data
    provenance (e.g. the synthetic-data warning) stamped under it, the figure back."""
    if tight:
        fig.tight_layout()
    if notice:
        fig.text(0.5, -0.01, notice, ha="center", va="top", fontsize=9, color="firebrick",
                 style="italic")
    return fig


def save_figure(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (atomically); return the written paths.
    The PDF holds no creation date (its embedded font subsets still vary between processes)."""
    written = [Path(stem).with_suffix(f".{fmt}") for fmt in ("png", "pdf")]
    for target in written:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:],
                        metadata={"CreationDate": None} if target.suffix == ".pdf" else None)
    return written


def plot_training_curves(histories: dict[str, pd.DataFrame],
                         notice: str | None = None) -> plt.Figure:
    """Per-epoch training and validation loss and validation AUC, one colour per run."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k, (label, h) in enumerate(histories.items()):
        for ax, col in zip(axes, ("train_loss", "val_loss", "val_auc"), strict=True):
            ax.plot(h["epoch"], h[col], color=f"C{k}", label=arm_label(label),
                    **({"marker": "o", "ms": 3} if col == "val_auc" else {}))
    for ax, title in zip(axes, ("training loss", "validation loss", "validation AUC"),
                         strict=True):
        ax.set(title=title, xlabel="epoch")
    axes[2].set_ylim(0, 1.02)
    axes[0].legend()
    return finish(fig, notice)


def plot_accuracy_across_datasets(acc: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Figure 1: accuracy (%) of each model on each dataset split, mean over seeds (lines and
    markers, error bars = std over seeds)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    order = list(dict.fromkeys(acc["dataset"]))
    for k, (model, sub) in enumerate(acc.groupby("model", sort=False)):
        stats = sub.groupby("dataset")["accuracy"].agg(["mean", "std"]).reindex(order) * 100
        ax.errorbar(range(len(order)), stats["mean"], yerr=stats["std"].fillna(0),
                    marker="o", capsize=3, color=f"C{k}", label=arm_label(model))
    ax.set_xticks(range(len(order)), order)
    ax.set(ylabel="accuracy (%)", ylim=(0, 100), title="Accuracy across datasets")
    ax.legend()
    return finish(fig, notice)


def plot_f1_bars(table: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Figure 2: F1 (%) per model; ours with 95% bootstrap intervals, the paper's reported
    values as hatched bars beside them."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = np.arange(len(table))
    lo = (table["f1"] - table["f1_low"]).clip(lower=0).fillna(0)
    hi = (table["f1_high"] - table["f1"]).clip(lower=0).fillna(0)
    ax.bar(x - 0.2, table["f1"], 0.4, yerr=[lo, hi], capsize=4, color="C0",
           label="ours (95% CI)")
    ax.bar(x + 0.2, table["f1_paper"], 0.4, color="white", edgecolor="C3", hatch="//",
           label="paper (reported)")
    for i, v in enumerate(table["f1"]):
        ax.text(i - 0.2, v + 1, f"{v:.1f}", ha="center", fontsize=9)
    ax.set_xticks(x, table["model"])
    ax.set(ylabel="F1-score (%)", ylim=(0, 105), title="F1-score per model")
    ax.legend(loc="lower right")
    return finish(fig, notice)


def plot_roc_curves(curves: dict[str, dict], notice: str | None = None) -> plt.Figure:
    """Figure 3: each model's ROC curve pooled over its runs and splits
    (:func:`aecnn_utils.reporting.tables.roc_curves`): the mean curve (scikit-learn's
    ``RocCurveDisplay``, marker-line style, as the paper's) with the band in which 95% of the
    report halves' curves lie, and the mean AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    markers = "osd^v<>"
    for k, (model, c) in enumerate(curves.items()):
        RocCurveDisplay(fpr=c["fpr"], tpr=c["tpr"], roc_auc=c["auc"]).plot(
            ax, curve_kwargs={"marker": markers[k % len(markers)], "ms": 5, "color": f"C{k}",
                              "markevery": 10,
                              "label": f"{arm_label(model)} (AUC {c['auc']:.3f}, "
                                       f"{c['n']} curves)"})
        ax.fill_between(c["fpr"], c["low"], c["high"], color=f"C{k}", alpha=0.15, lw=0)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlabel="1 - specificity (false positive rate)",
           ylabel="sensitivity (true positive rate)",
           title="ROC on the report halves (mean; band: 95% of splits x seeds)")
    ax.legend(loc="lower right", fontsize=8)
    return finish(fig, notice)


def plot_reliability(curves: dict[str, dict], where: str, notice: str | None = None
                     ) -> plt.Figure:
    """Reliability diagrams, one panel per model: each bin's mean predicted probability against
    the share of its cells that are positive (binary: abnormal), before and after temperature
    scaling (:func:`aecnn_utils.reporting.tables.run_reliability`); marker area ~ cells.
    ``where``: the cells the curves are on (the title says it)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 3.9), squeeze=False)
    fig.suptitle(f"Reliability: {where}", fontsize=10)
    for ax, (model, c) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="calibrated")
        for key, colour, what in (("before", "C3", "as trained"),
                                  ("after", "C0", f"T = {c['temperature']:.2f}")):
            bins = c[key]
            ax.plot(bins["mean_prob"], bins["observed"], color=colour, marker="o", lw=1.2,
                    ms=0, label=f"{what}: ECE {c[f'ece_{key}']:.3f}")
            ax.scatter(bins["mean_prob"], bins["observed"], s=8 + 120 * bins["n"] /
                       bins["n"].sum(), color=colour, zorder=3)
        ax.set(xlim=(0, 1), ylim=(0, 1),
               xlabel="predicted P(abnormal)" if c["binary"] else "top class's probability")
        ax.set_title(arm_label(model), fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    binary = all(c["binary"] for c in curves.values())
    axes[0][0].set_ylabel("observed share abnormal" if binary else "share correct")
    return finish(fig, notice)


def plot_explanations(e: Explained, per_class: int = 1,
                      notice: str | None = None) -> plt.Figure:
    """A grid of one model's maps (:func:`aecnn_utils.experiments.explain.explain_run`): a row per
    publisher class, ``per_class`` correctly and incorrectly predicted cells each (the most
    confident first), each as the cell with its nucleus outlined, Grad-CAM of the predicted
    class and (AECNN) the spatial attention, with the maps' colour bar. A blank panel: no
    cell of that class was predicted that way (the figure says so)."""
    from aecnn_utils.experiments.explain import overlay

    classes = list(dict.fromkeys(e.cells["source_class"]))
    panels = 3 if e.attention is not None else 2
    columns = 2 * per_class * panels  # right ones, then wrong ones
    fig, axes = plt.subplots(len(classes), columns,
                             figsize=(1.25 * columns + 0.6, 1.35 * len(classes) + 0.6),
                             squeeze=False, layout="constrained")
    for r, cls in enumerate(classes):
        for ok_col, ok in enumerate((True, False)):
            rows = e.cells[(e.cells["source_class"] == cls) & (e.cells["correct"] == ok)]
            rows = rows.sort_values("prob_pred", ascending=False).index[:per_class]
            for k in range(per_class):
                base = (ok_col * per_class + k) * panels
                for p in range(panels):
                    blank_axis(axes[r, base + p])
                if k >= len(rows):
                    continue
                i = rows[k]
                cell = outline(e.images[i], e.masks[i], (255, 255, 0))
                shown = [cell, overlay(e.images[i], e.cam[i])]
                if e.attention is not None:
                    shown.append(overlay(e.images[i], e.attention[i]))
                for p, image in enumerate(shown):
                    axes[r, base + p].imshow(image)
                axes[r, base].set_title(f"{'right' if ok else 'wrong'} "
                                        f"{e.cells['prob_pred'][i]:.2f}", fontsize=6, pad=2)
        axes[r, 0].set_ylabel(str(cls).replace("_", " "), fontsize=7, rotation=0,
                              ha="right", va="center")
    names = ["cell, nucleus", "Grad-CAM", f"attention {e.attention_stage}"][:panels]
    for c in range(columns):
        axes[-1, c].set_xlabel(names[c % panels], fontsize=6)
    fig.suptitle(f"{arm_label(e.model)}: where it looks (left: right predictions, right: "
                 "wrong ones)", fontsize=9)
    bar = fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(0, 1), "jet"), ax=axes, shrink=0.6,
                       pad=0.02, aspect=30)
    bar.set_label("map value (0: none, 1: the map's peak)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.text(0.01, 0.005, "A blank panel: no cell of that class was predicted that way.",
             fontsize=6, color="dimgrey")
    return finish(fig, notice, tight=False)


def plot_nucleus_share(table: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Per publisher class, each model's Grad-CAM nucleus ratio (mass share / area share; 1: an
    even map) with its 95% slide interval (``explain.nucleus_table``)."""
    cam = table[(table["explanation"] == "Grad-CAM") & (table["source_class"] != "all")]
    classes = list(dict.fromkeys(cam["source_class"]))
    models = list(dict.fromkeys(cam["model"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2.5, 3.6))
    width = 0.8 / max(1, len(models))
    for k, model in enumerate(models):
        rows = cam[cam["model"] == model].set_index("source_class").reindex(classes)
        x = np.arange(len(classes)) + (k - (len(models) - 1) / 2) * width
        err = np.vstack([rows["ratio"] - rows["ratio_low"], rows["ratio_high"] - rows["ratio"]])
        ax.bar(x, rows["ratio"], width, color=f"C{k}", label=arm_label(model),
               yerr=np.nan_to_num(err), capsize=2, error_kw={"lw": 0.8})
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_xticks(np.arange(len(classes)), [c.replace("_", " ") for c in classes],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Grad-CAM on nucleus / nucleus area")
    ax.legend(fontsize=8)
    return finish(fig, notice)


def plot_comparisons(comparisons: Sequence[Comparison], labels: dict[str, str] | None = None,
                     notice: str | None = None) -> plt.Figure:
    """Paired comparisons as a forest plot (:func:`aecnn_utils.experiments.paired.compare`), a panel
    per metric and setting: each difference (first arm minus second) with its 95% interval (thin)
    and its Holm interval (thick); filled where the difference is shown, open where not; zero
    dashed. AUC as a fraction, the rest in points."""
    labels = labels or {}
    panels = list(dict.fromkeys((c.setting, c.metric) for c in comparisons))
    rows = list(dict.fromkeys((c.first, c.second) for c in comparisons))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 2.5,
                                                      0.36 * len(rows) + 1.4),
                             squeeze=False, sharey=True)
    y = {pair: len(rows) - 1 - i for i, pair in enumerate(rows)}
    for ax, (setting, metric) in zip(axes[0], panels, strict=True):
        scale = 1.0 if metric.startswith("roc_auc") else 100.0
        for c in (c for c in comparisons if (c.setting, c.metric) == (setting, metric)):
            at = y[c.first, c.second]
            ax.plot([scale * c.holm_low, scale * c.holm_high], [at, at], color="C0", lw=3,
                    alpha=0.35, solid_capstyle="butt")
            ax.plot([scale * c.low, scale * c.high], [at, at], color="C0", lw=1)
            ax.plot(scale * c.diff, at, "o", color="C0", ms=5,
                    markerfacecolor="C0" if c.shown else "white")
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.set_xlabel(f"difference in {metric_label(metric).removesuffix(' (%)')}"
                      f"{'' if scale == 1 else ' (points)'}, {SETTING_WORDS[setting]}")
    axes[0][0].set_yticks(list(y.values()),
                          [f"{labels.get(a, a)} - {labels.get(b, b)}" for a, b in y], fontsize=8)
    fig.suptitle(f"Paired differences: 95% interval (thin), Holm interval over "
                 f"{comparisons[0].family} (thick); filled = shown", fontsize=9)
    return finish(fig, notice)


def plot_confusion_matrices(matrices: dict[str, np.ndarray], class_names: Sequence[str],
                            notice: str | None = None) -> plt.Figure:
    """One confusion matrix per model (scikit-learn's ``ConfusionMatrixDisplay``; rows: true
    class; coloured by row share, annotated with counts and row percentages)."""
    fig, axes = plt.subplots(1, len(matrices), squeeze=False,
                             figsize=(3.6 * len(matrices), 3.4))
    for ax, (model, cm) in zip(axes[0], matrices.items(), strict=True):
        cm = np.asarray(cm)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        shown = ConfusionMatrixDisplay(share, display_labels=list(class_names)).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format=".0%", im_kw={"vmin": 0, "vmax": 1})
        for (i, j), text in np.ndenumerate(shown.text_):
            text.set_text(f"{cm[i, j]}\n{text.get_text()}")
        ax.set(title=arm_label(model), xlabel="predicted", ylabel="true")
        ax.grid(False)
    return finish(fig, notice)


def plot_per_class_detection(detection: pd.DataFrame,
                             notice: str | None = None) -> plt.Figure:
    """Share of each publisher class classified correctly (sensitivity for abnormal classes,
    specificity for normal ones), one bar per model."""
    data = detection.assign(model=detection["model"].map(arm_label),
                            cls=detection["source_class"] + " (" + detection["label_name"] + ")")
    fig, ax = plt.subplots(figsize=(8, 0.45 * data["cls"].nunique() + 1.5))
    sns.barplot(data=data, y="cls", x="correct", hue="model", ax=ax)
    ax.set(xlim=(0, 1), xlabel="share classified correctly", ylabel="",
           title="Per-class sensitivity / specificity (report cells)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return finish(fig, notice)


def plot_segmentation(df: pd.DataFrame, per_class: int = 3, size: int = 96, seed: int = 0,
                      notice: str | None = None) -> plt.Figure:
    """For sample cells of each class: the cell (green) and nucleus (red) the simple
    segmentation finds, and the crops of ``resize_mode`` ``cell`` and ``nucleus``."""
    from aecnn_utils.data.segment import harmonise, segment

    rows = sample_rows(df, per_class, seed)
    classes = list(dict.fromkeys(rows["source_class"]))
    panels = ("segmentation", "cell extent", "nucleus extent")
    fig, axes = plt.subplots(len(classes), per_class * 3, squeeze=False,
                             figsize=(1.1 * per_class * 3 + 1.8, 1.2 * len(classes)))
    for i, cls in enumerate(classes):
        sub = rows[rows["source_class"] == cls]
        for j in range(per_class):
            trio = axes[i][3 * j:3 * j + 3]
            for ax in trio:
                blank_axis(ax)
                if j >= len(sub):
                    ax.axis("off")  # fewer cells of this class than panels
            if j >= len(sub):
                continue
            row = sub.iloc[j]
            image = load_cell(row.path, row_box(row))
            seg = segment(image)
            width = max(1, image.shape[0] // 60)
            shown = outline(outline(image, seg.cell, (0, 200, 0), width), seg.nucleus,
                            (230, 0, 0), width)
            trio[0].imshow(square_resize(shown, size))
            trio[1].imshow(square_resize(harmonise(image, "cell", seg), size))
            trio[2].imshow(square_resize(harmonise(image, "nucleus", seg), size))
            if i == 0:
                for ax, title in zip(trio, panels, strict=True):
                    ax.set_title(title, fontsize=7)
        axes[i][0].set_ylabel(cls, rotation=0, ha="right", va="center", fontsize=8)
    return finish(fig, notice)


def plot_embedding(points: np.ndarray, frame: pd.DataFrame, title: str,
                   notice: str | None = None) -> plt.Figure:
    """2-D embedding of cells, coloured by dataset, marked by label (``frame``: one row per
    point with ``dataset`` and ``label_name``)."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    shown = frame.assign(x=points[:, 0], y=points[:, 1],
                         dataset=frame["dataset"].map(lambda d: DATASET_LABELS.get(d, d)))
    sns.scatterplot(data=shown.rename(columns={"label_name": "class"}), x="x", y="y",
                    hue="dataset", style="class", s=14, alpha=0.7, linewidth=0, ax=ax)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    ax.legend(fontsize=8, markerscale=1.5, loc="best")
    return finish(fig, notice)


def plot_speed_vs_auc(table: pd.DataFrame, notice: str | None = None) -> plt.Figure:
    """Cross-dataset AUC (with its 95% interval) against training and inference throughput,
    one point per model of ``aecnn_utils.deploy.bench.efficiency_table`` that has an AUC; the legend
    gives each point's training seeds (an AUC of one seed leaves its training noise out)."""
    data = table.dropna(subset=["auc"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    size = int(data["image_size"].iloc[0]) if len(data) else 0
    for ax, col, title in ((axes[0], "train_img_s", "training"),
                           (axes[1], "infer_fused_img_s", "inference")):
        for k, (_, r) in enumerate(data.iterrows()):
            ax.errorbar(r[col], r["auc"], yerr=[[r["auc"] - r["auc_low"]],
                                                [r["auc_high"] - r["auc"]]],
                        fmt="o", color=f"C{k}", capsize=3,
                        label=f"{r['name']} ({int(r['seeds'])} seed{'s' * (r['seeds'] != 1)})")
        ax.set(xscale="log", xlabel=f"{title} at {size} px (images/s)",
               title=f"AUC against {title} speed")
    axes[0].set_ylabel("AUC across datasets (95% interval)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    return finish(fig, notice)


def plot_label_efficiency(table: pd.DataFrame, levels: Sequence[float] = (0.90, 0.95),
                          notice: str | None = None) -> plt.Figure:
    """The label-efficiency curve: AUC on the report halves against the labelled cells ``k``
    (``all``: the whole pool; ``0``: the SIPaKMeD run as it is), a line per method with its 95%
    slide interval, the AUC ``levels`` dashed (``table``: ``newlab.curve_frame``)."""
    ks = list(dict.fromkeys(table["k"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    width = 0.5 / max(len(methods), 1)
    for i, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("k").reindex(ks)
        x = np.arange(len(ks)) + (i - (len(methods) - 1) / 2) * width
        err = np.vstack([rows["value"] - rows["low"], rows["high"] - rows["value"]])
        ax.errorbar(x, rows["value"], yerr=np.nan_to_num(err), marker="o", ms=4, lw=1.2,
                    capsize=2, color=f"C{i}", label=method)
    for level in levels:
        ax.axhline(level, color="grey", ls="--", lw=0.8)
    ax.set_xticks(np.arange(len(ks)), ks)
    ax.set(xlabel="labelled cells of the new lab (k)", ylabel="AUC on the report halves")
    ax.legend(fontsize=8, loc="lower right")
    return finish(fig, notice)
