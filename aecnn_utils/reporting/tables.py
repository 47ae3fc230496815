"""The paper's Table 2 and the data behind Figures 1-3, regenerated from our own runs.

Our numbers come from finished runs (:mod:`aecnn_utils.training.engine`); the paper's appear only in
separate columns labelled "(paper)". The paper is inconsistent with itself: its abstract gives
AECNN an accuracy of 93.87%, a sensitivity of 92.14%, a specificity of 94.63% and an AUC of 0.958,
while Table 2 gives 97.63%, 96.89%, 98.11% and 0.986. Both are kept here, as reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from aecnn_utils.core.errors import warn
from aecnn_utils.core.formatting import to_markdown
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.data.taxonomy import DATASET_LABELS
from aecnn_utils.evaluation import metrics as M
from aecnn_utils.evaluation.calibration import T_RANGE, reliability
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.paper import PAPER_TABLE2
from aecnn_utils.experiments.tune import arm_label
from aecnn_utils.experiments.wording import trained_on_line
from aecnn_utils.training.prepare import PreparedData
from aecnn_utils.training.runs import RunResult, evaluate_checkpoint
from aecnn_utils.training.scoring import CALIBRATION_SCORES

METRIC_LABELS: dict[str, str] = {"accuracy": "Accuracy", "precision": "Precision",
                                 "recall": "Recall", "specificity": "Specificity",
                                 "f1": "F1-Score", "roc_auc": "AUC"}


def grid_table2(result: S.GridResult, at_threshold: bool = False) -> pd.DataFrame:
    """Table 2 from the model grid (:func:`aecnn_utils.experiments.tune.tune`): per model each of
    the paper's metrics as a :func:`aecnn_utils.experiments.wording.cell` (nested choices, seeds,
    slide-level interval; at 0.5, or with ``at_threshold`` at each split's selection-chosen
    threshold), the paper's value beside it, AUC on new slides and the learning rates the splits
    chose."""
    rows = []
    for arm in result.grid.arms:
        row = {"Model": arm_label(arm.name)}
        for metric, label in METRIC_LABELS.items():
            key = f"{metric}@threshold" if at_threshold and metric != "roc_auc" else metric
            row[f"{label} (ours)"] = W.cell(result.estimate(arm.name, key))
            paper = PAPER_TABLE2.get(arm.name, {}).get(metric)
            row[f"{label} (paper)"] = "-" if paper is None else (
                f"{paper:.3f}" if metric == "roc_auc" else f"{paper:.2f}")
        auc = result.estimate(arm.name, "roc_auc")
        row["AUC, new slides (95%)"] = W.new_slides_cell(auc)
        row["Learning rate (splits)"] = ", ".join(f"{c.removeprefix('lr ')} ({n})"
                                                  for c, n in auc.chosen)
        rows.append(row)
    return pd.DataFrame(rows)


def grid_numeric(result: S.GridResult, metrics: Sequence[str] = tuple(METRIC_LABELS),
                 setting: str = "cross") -> pd.DataFrame:
    """One row per arm, per metric key its value, ``_std`` (the table's spread), ``_low``,
    ``_high``, ``_new_low``, ``_new_high`` (percent, AUC as a fraction) and the paper's value
    (``_paper``, Table 2's models): the numbers behind :func:`grid_table2` and Fig. 2."""
    rows = []
    for arm in result.grid.arms:
        row: dict[str, Any] = {"model": arm_label(arm.name), "arm": arm.name}
        for key in metrics:
            e = result.estimate(arm.name, key, setting)
            scale = 1.0 if key.startswith("roc_auc") else 100.0
            for suffix, v in (("", e.value), ("_std", e.spread), ("_low", e.low),
                              ("_high", e.high), ("_new_low", e.new_low),
                              ("_new_high", e.new_high)):
                row[f"{key}{suffix}"] = scale * v
            row[f"{key}_paper"] = PAPER_TABLE2.get(arm.name, {}).get(key, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def table2_comparisons(result: S.GridResult, ours: str = "aecnn") -> list[P.Comparison]:
    """AECNN against every other model on the screening metrics (one Holm family)."""
    return P.compare(result, [(ours, a.name) for a in result.grid.arms if a.name != ours],
                     S.SCREENING)


def grid_summary(result: S.GridResult, comparisons: Sequence[P.Comparison]) -> str:
    """Table 2 in words, from the records: each model's AUC with its range on new slides and
    the optimism of choosing its learning rate once on all cells, then each paired comparison
    (AUC; the rest in the comparisons table)."""
    lines = []
    for arm in result.grid.arms:
        e = result.estimate(arm.name, "roc_auc")
        lines.append(f"- {arm_label(arm.name)}: AUC {W.cell(e)} (new slides "
                     f"{W.new_slides_cell(e)}); with its learning rate chosen once on all "
                     f"cells ({e.all_cells_choice}) {e.all_cells:.3f} "
                     f"({e.all_cells - e.value:+.3f}).")
    labels = {a.name: arm_label(a.name) for a in result.grid.arms}
    lines += [f"- {W.words(c, labels)}." for c in comparisons if c.metric == "roc_auc"]
    frame = result.frame()
    auc = frame[frame["metric"] == "roc_auc"]
    lines.append(trained_on_line(zip(auc["arm"].map(arm_label), auc["device"], strict=True)))
    lines.append(W.training_line(result, labels))
    return "\n".join(lines) + "\n"


def write_grid(result: S.GridResult, comparisons: Sequence[P.Comparison], stem: str | Path,
               caption: str, pretty: pd.DataFrame) -> list[Path]:
    """A grid's table as :func:`write_table` writes one (the records as ``stem.csv``, the
    readable table as ``.md`` and ``.tex``) and its comparisons as
    ``stem_comparisons.csv``."""
    stem = Path(stem)
    written = write_table(result.frame(), stem, caption, pretty)
    frame = P.comparisons_frame(comparisons)
    path = stem.with_name(f"{stem.name}_comparisons.csv")
    written.append(atomic_write_text(path, frame.to_csv(index=False)))
    return written


def write_table(numeric: pd.DataFrame, stem: str | Path, caption: str,
                pretty: pd.DataFrame) -> list[Path]:
    """Write a table as ``stem.csv`` (``numeric``, with ``data`` and ``profile`` columns),
    ``stem.md`` and ``stem.tex`` (``pretty``), with ``caption`` and the data provenance."""
    stem = Path(stem)
    note = f"{caption} Data: {numeric['data'].iloc[0]}; profile: {numeric['profile'].iloc[0]}."
    written = [atomic_write_text(stem.with_suffix(".csv"), numeric.to_csv(index=False)),
               atomic_write_text(stem.with_suffix(".md"), f"{note}\n\n{to_markdown(pretty)}")]
    latex = pretty.to_latex(index=False, caption=note, label=f"tab:{stem.name}", escape=True)
    written.append(atomic_write_text(stem.with_suffix(".tex"), latex))
    return written


def accuracy_by_dataset(results: dict[str, Sequence[RunResult]], data: PreparedData,
                        device: str = "auto") -> pd.DataFrame:
    """Figure 1's data: accuracy and F1 of every run's best model on each split, labelled by the
    dataset(s) it holds (the training split is marked: those cells were seen in training). The
    training cells need the run's ``best.pt``; a run without it (warned) gives val/test only."""
    labels = {}
    for part in ("train", "val", "test"):
        names = "+".join(dict.fromkeys(data.frame(part)["dataset"]))
        pretty = "+".join(DATASET_LABELS.get(n, n) for n in names.split("+"))
        labels[part] = f"{pretty} ({part})"
    rows = []
    for model, runs in results.items():
        for run in runs:
            for part in ("train", "val", "test"):
                if part == "train" and not run.best_checkpoint.is_file():
                    warn(f"{run.run_dir} has no best.pt (a run folder copied without "
                                  f"its checkpoints): {model}'s accuracy on its training cells "
                                  "is left out of Figure 1")
                    continue
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


def calibration_table(results: dict[str, Sequence[RunResult]]) -> pd.DataFrame:
    """One row per model: each calibration score on the report cells (mean, lowest and highest
    over every split of every seed; a run without repeated splits counts its configured split),
    before and after the temperature fitted on the selection cells; ``n`` scorings."""
    rows = []
    for model, runs in results.items():
        per_split = [r.metrics["splits"].get("per_split", []) if "splits" in r.metrics else
                     [r.metrics] for r in runs]
        scores = [s["calibration"] for splits in per_split for s in splits
                  if "calibration" in s]
        if not scores:
            continue
        row: dict[str, Any] = {"model": model, "n": len(scores),
                               "ece_lower": sum(s["ece_calibrated"] < s["ece"] for s in scores)}
        for name in CALIBRATION_SCORES:
            values = [s[name] for s in scores]
            row[name] = float(np.mean(values))
            row[f"{name}_min"], row[f"{name}_max"] = float(np.min(values)), float(np.max(values))
        row["data"], row["profile"] = runs[0].metrics["data"], runs[0].metrics["profile"]
        rows.append(row)
    return pd.DataFrame(rows)


def run_reliability(run: RunResult, data: PreparedData) -> dict[str, Any]:
    """:func:`aecnn_utils.evaluation.calibration.reliability` of a run's best epoch on its test
    (report) cells, from its stored logits (``epochs.npz``) and at its stored temperature (fitted on
    its validation cells, ``metrics.json``)."""
    logits = run.epoch_logits(run.metrics["best_epoch"])
    rows = data.index["test"]
    return reliability(data.frame("pool")["label"].to_numpy()[rows], logits[rows],
                       run.temperature)


def calibration_caption(table: pd.DataFrame) -> str:
    """What the calibration table's cells are."""
    return ("Calibration on the report cells regenerated by aecnn-kit: expected calibration "
            "error (10 bins of P(abnormal); multi-class: of the top class), negative "
            "log-likelihood and Brier score as trained and after a temperature fitted on the "
            "selection cells of the same split; mean (lowest-highest) over "
            f"{int(table['n'].max())} scorings (every split of every seed).")


def calibration_summary(table: pd.DataFrame) -> str:
    """The calibration table in words: per model, the temperature and the scores before and
    after it, and in how many scorings it lowered the ECE."""
    lines = []
    for _, r in table.iterrows():
        bound = (" - at the search's bound: the scores carry little information"
                 if r["temperature_max"] >= 0.999 * T_RANGE[1] else "")
        lines.append(
            f"- {arm_label(r['model'])}: temperature {r['temperature']:.2f} "
            f"({r['temperature_min']:.2f}-{r['temperature_max']:.2f}{bound}); ECE "
            f"{r['ece']:.3f} as "
            f"trained, {r['ece_calibrated']:.3f} scaled (lower in {int(r['ece_lower'])} of "
            f"{int(r['n'])} scorings); NLL {r['nll']:.3f} -> {r['nll_calibrated']:.3f}; "
            f"Brier {r['brier']:.3f} -> {r['brier_calibrated']:.3f}.")
    return "\n".join(lines)


def format_calibration(table: pd.DataFrame) -> pd.DataFrame:
    """The calibration table as "mean (lowest-highest)" cells."""
    out = pd.DataFrame({"Model": table["model"].map(arm_label)})
    for name, label in (("temperature", "Temperature"), ("ece", "ECE"),
                        ("ece_calibrated", "ECE, scaled"), ("nll", "NLL"),
                        ("nll_calibrated", "NLL, scaled"), ("brier", "Brier"),
                        ("brier_calibrated", "Brier, scaled")):
        out[label] = [f"{r[name]:.3f} ({r[f'{name}_min']:.3f}-{r[f'{name}_max']:.3f})"
                      for _, r in table.iterrows()]
    return out


#: False-positive rates on which the ROC curves of the splits are averaged.
ROC_GRID: np.ndarray = np.linspace(0.0, 1.0, 101)


def roc_curves(results: dict[str, Sequence[RunResult]], data: PreparedData
               ) -> dict[str, dict[str, Any]]:
    """Figure 3's data, pooled: per model the ROC curve of every run (seed) on every split's
    report half, at the epoch chosen on its selection half, interpolated on :data:`ROC_GRID`:
    ``fpr``, ``tpr`` (mean), ``low`` / ``high`` (2.5% and 97.5% over the curves), ``auc``
    (mean over curves) and ``n`` (curves)."""
    labels = data.frame("pool")["label"].to_numpy()
    out = {}
    for model, runs in results.items():
        tprs, aucs = [], []
        for run in runs:
            for s in S.run_scorings(run, data):
                y, p = labels[s.report_rows], s.probs[s.report_rows, 1]
                if len(np.unique(y)) < 2:
                    continue
                fpr, tpr, _ = M.roc_points(y, p)
                tprs.append(np.interp(ROC_GRID, fpr, tpr))
                aucs.append(float(roc_auc_score(y, p)))
        if tprs:
            curves = np.vstack(tprs)
            low, high = np.percentile(curves, [2.5, 97.5], axis=0)
            out[model] = {"fpr": ROC_GRID, "tpr": curves.mean(axis=0), "low": low,
                          "high": high, "auc": float(np.mean(aucs)), "n": len(tprs)}
    return out
