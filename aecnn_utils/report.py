"""The paper's Table 2 and the data behind Figures 1-3, regenerated from our own runs.

Our numbers come from finished runs (:mod:`aecnn_utils.train`); the paper's appear only in
separate columns labelled "(paper)". The paper is inconsistent with itself: its abstract gives
AECNN an accuracy of 93.87%, a sensitivity of 92.14%, a specificity of 94.63% and an AUC of 0.958,
while Table 2 gives 97.63%, 96.89%, 98.11% and 0.986. Both are kept here, as reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics as M
from .config import RunConfig
from .data.prepare import PreparedData
from .data.taxonomy import DATASET_LABELS
from .io import atomic_write_text
from .models import MODEL_LABELS
from .runs import RunResult, evaluate_checkpoint, results_table

#: Table 2 of the paper ("Performance comparison across models (mean values)"); percent, AUC as
#: a fraction. Reported numbers, not ours.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "resnet50": {"accuracy": 92.18, "precision": 91.44, "recall": 90.37, "specificity": 93.12,
                 "f1": 90.88, "roc_auc": 0.942},
    "efficientnet_b3": {"accuracy": 94.72, "precision": 94.01, "recall": 93.87,
                        "specificity": 95.21, "f1": 93.92, "roc_auc": 0.958},
    "aecnn": {"accuracy": 97.63, "precision": 97.21, "recall": 96.89, "specificity": 98.11,
              "f1": 97.02, "roc_auc": 0.986},
}

METRIC_LABELS: dict[str, str] = {"accuracy": "Accuracy", "precision": "Precision",
                                 "recall": "Recall", "specificity": "Specificity",
                                 "f1": "F1-Score", "roc_auc": "AUC"}


class IncomparableRuns(ValueError):
    """Runs of different profiles, data or protocols were put in one table."""


def _comparable_key(config: RunConfig) -> dict:
    data = config.to_dict()
    for key in ("model", "model_kwargs", "seed", "seeds", "device", "num_workers", "n_boot"):
        data.pop(key, None)
    return data


def check_comparable(results: dict[str, Sequence[RunResult]]) -> None:
    """Refuse to put runs of different profiles, data or protocols in one table.

    Runs may differ in model and seed only; everything else (profile, datasets, protocol, image
    size, schedule, loss, data provenance) must be equal.
    """
    runs = [r for rs in results.values() for r in rs]
    if not runs:
        raise IncomparableRuns("no runs to compare")
    ref, ref_key = runs[0], _comparable_key(runs[0].config)
    for r in runs[1:]:
        if r.metrics["data"] != ref.metrics["data"]:
            raise IncomparableRuns(f"{r.run_dir.name} used {r.metrics['data']!r} but "
                                   f"{ref.run_dir.name} used {ref.metrics['data']!r}")
        key = _comparable_key(r.config)
        diff = sorted(k for k in set(key) | set(ref_key) if key.get(k) != ref_key.get(k))
        if diff:
            raise IncomparableRuns(f"{r.run_dir.name} and {ref.run_dir.name} differ in "
                                   f"{', '.join(diff)}: they cannot share a table")


def table2(results: dict[str, Sequence[RunResult]], threshold: str = "0.5") -> pd.DataFrame:
    """Table 2: ours (mean over seeds, std, 95% bootstrap interval of the first seed; percent,
    AUC as a fraction) beside the paper's reported values, one row per model."""
    check_comparable(results)
    ours = results_table(results, threshold=threshold).set_index("model")
    rows = []
    for model in ours.index:
        row: dict[str, object] = {"model": MODEL_LABELS.get(model, model),
                                  "seeds": int(ours.loc[model, "seeds"])}
        for metric in METRIC_LABELS:
            scale = 1.0 if metric == "roc_auc" else 100.0
            for suffix in ("", "_std", "_low", "_high"):
                row[f"{metric}{suffix}"] = float(ours.loc[model, f"{metric}{suffix}"]) * scale
            row[f"{metric}_paper"] = PAPER_TABLE2.get(model, {}).get(metric, np.nan)
        row["profile"] = ours.loc[model, "profile"]
        row["data"] = ours.loc[model, "data"]
        rows.append(row)
    return pd.DataFrame(rows)


def format_table2(numeric: pd.DataFrame) -> pd.DataFrame:
    """Readable Table 2: "mean ± std [low, high]" for ours, the paper's value beside it."""
    out = pd.DataFrame({"Model": numeric["model"]})
    for metric, label in METRIC_LABELS.items():
        digits = 3 if metric == "roc_auc" else 2

        def cell(r: pd.Series, metric: str = metric, digits: int = digits) -> str:
            text = M.format_mean_std(r[metric], r[f"{metric}_std"], digits, percent=False)
            if not np.isnan(r[f"{metric}_low"]):
                text += f" [{r[f'{metric}_low']:.{digits}f}, {r[f'{metric}_high']:.{digits}f}]"
            return text

        out[f"{label} (ours)"] = numeric.apply(cell, axis=1)
        out[f"{label} (paper)"] = numeric[f"{metric}_paper"].map(
            lambda v, d=digits: "-" if np.isnan(v) else f"{v:.{d}f}")
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no index)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(numeric: pd.DataFrame, stem: str | Path, caption: str) -> list[Path]:
    """Write Table 2 as ``stem.csv`` (numbers), ``stem.md`` and ``stem.tex`` (formatted)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pretty = format_table2(numeric)
    note = f"{caption} Data: {numeric['data'].iloc[0]}; profile: {numeric['profile'].iloc[0]}."
    written = [atomic_write_text(stem.with_suffix(".csv"), numeric.to_csv(index=False)),
               atomic_write_text(stem.with_suffix(".md"), f"{note}\n\n{to_markdown(pretty)}")]
    latex = pretty.to_latex(index=False, caption=note, label="tab:table2", escape=True)
    written.append(atomic_write_text(stem.with_suffix(".tex"), latex))
    return written


def accuracy_by_dataset(results: dict[str, Sequence[RunResult]], data: PreparedData,
                        device: str = "auto") -> pd.DataFrame:
    """Figure 1's data: accuracy and F1 of every run's best model on each split, labelled by the
    dataset(s) it holds (the training split is marked: those cells were seen in training)."""
    labels = {}
    for part in ("train", "val", "test"):
        names = "+".join(dict.fromkeys(data.caches[part].frame["dataset"]))
        pretty = "+".join(DATASET_LABELS.get(n, n) for n in names.split("+"))
        labels[part] = f"{pretty} ({part})"
    rows = []
    for model, runs in results.items():
        for run in runs:
            for part in ("train", "val", "test"):
                # val/test predictions are stored by the run; only the training cells are new
                y, probs = (evaluate_checkpoint(run, data, part, device) if part == "train"
                            else stored_predictions(run, part))
                m = M.classification_metrics(y, probs)
                rows.append({"model": model, "seed": run.config.seed, "split": part,
                             "dataset": labels[part], "accuracy": m["accuracy"],
                             "f1": m["f1"], "roc_auc": m["roc_auc"]})
    return pd.DataFrame(rows)


def read_predictions(run: RunResult, part: str = "test") -> pd.DataFrame:
    """A run's per-cell predictions (``predictions_<part>.csv``)."""
    return pd.read_csv(run.run_dir / f"predictions_{part}.csv")


def stored_predictions(run: RunResult, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities (columns ``prob_<class>``, in class order) of a run."""
    preds = read_predictions(run, part)
    columns = [f"prob_{name}" for name in run.metrics["class_names"]]
    return preds["label"].to_numpy(), preds[columns].to_numpy()


def per_class_detection(run: RunResult, part: str = "test") -> pd.DataFrame:
    """Share of cells of each publisher class called abnormal (binary runs): the sensitivity
    for abnormal classes, one minus the specificity for normal ones."""
    preds = read_predictions(run, part)
    if "prob_abnormal" not in preds:
        raise ValueError(f"{run.run_dir.name} is not a binary normal/abnormal run")
    preds["called_abnormal"] = preds["prob_abnormal"] >= 0.5
    table = (preds.groupby(["dataset", "source_class", "label_name"], sort=False)
             .agg(n=("called_abnormal", "size"), called_abnormal=("called_abnormal", "mean"))
             .reset_index())
    table["correct"] = np.where(table["label_name"] == "abnormal", table["called_abnormal"],
                                1 - table["called_abnormal"])
    return table


def roc_curves(results: dict[str, Sequence[RunResult]],
               part: str = "test") -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Figure 3's data: ROC curve (fpr, tpr) and AUC of each model's first run."""
    curves = {}
    for model, runs in results.items():
        y, probs = stored_predictions(runs[0], part)
        fpr, tpr, _ = M.roc_points(y, probs[:, 1])
        curves[model] = (fpr, tpr, float(M.classification_metrics(y, probs)["roc_auc"]))
    return curves
