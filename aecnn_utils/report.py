"""The paper's Table 2 and the data behind Figures 1-3, regenerated from our own runs.

Our numbers come from finished runs (:mod:`aecnn_utils.train`); the paper's appear only in
separate columns labelled "(paper)". The paper is inconsistent with itself: its abstract gives
AECNN an accuracy of 93.87%, a sensitivity of 92.14%, a specificity of 94.63% and an AUC of 0.958,
while Table 2 gives 97.63%, 96.89%, 98.11% and 0.986. Both are kept here, as reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import grid as G
from . import metrics as M
from .calibration import T_RANGE, reliability
from .config import RunConfig
from .data.prepare import PreparedData
from .data.taxonomy import DATASET_LABELS
from .evaluation import CALIBRATION_SCORES, reference_scores
from .io import atomic_write_text
from .models import model_label
from .runs import RunResult, evaluate_checkpoint, results_table, trained_on

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
#: AECNN in the paper's abstract (on CRIC); percent, AUC as a fraction. Reported, not ours.
PAPER_ABSTRACT: dict[str, float] = {"accuracy": 93.87, "sensitivity": 92.14,
                                    "specificity": 94.63, "roc_auc": 0.958}

METRIC_LABELS: dict[str, str] = {"accuracy": "Accuracy", "precision": "Precision",
                                 "recall": "Recall", "specificity": "Specificity",
                                 "f1": "F1-Score", "roc_auc": "AUC"}


class IncomparableRuns(ValueError):
    """Runs of different profiles, data or protocols were put in one table."""


def _comparable_key(config: RunConfig) -> dict:
    data = config.to_dict()
    # the learning rate is tuned per model (aecnn_utils.tune): it may differ; the cells are
    # compared through the data fingerprint, not the folder's path
    for key in ("model", "model_kwargs", "seed", "seeds", "device", "num_workers", "n_boot",
                "lr", "data_root"):
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
        for field in ("data", "data_fingerprint"):
            if r.metrics.get(field) != ref.metrics.get(field):
                raise IncomparableRuns(f"{r.run_dir.name} used {field} "
                                       f"{r.metrics.get(field)!r} but {ref.run_dir.name} "
                                       f"{ref.metrics.get(field)!r}")
        key = _comparable_key(r.config)
        diff = sorted(k for k in set(key) | set(ref_key) if key.get(k) != ref_key.get(k))
        if diff:
            raise IncomparableRuns(f"{r.run_dir.name} and {ref.run_dir.name} differ in "
                                   f"{', '.join(diff)}: they cannot share a table")


#: Columns of the screening table: what matters at Herlev's prevalence.
SCREENING_LABELS: dict[str, str] = {
    "prevalence": "Prevalence", "accuracy": "Accuracy", "f1": "F1-Score",
    "balanced_accuracy": "Balanced accuracy", "roc_auc": "AUC",
    "sens_at_spec90": "Sens. at spec. 90%", "sens_at_spec95": "Sens. at spec. 95%",
    "spec_at_sens90": "Spec. at sens. 90%", "spec_at_sens95": "Spec. at sens. 95%"}


def _numeric(ours: pd.DataFrame, labels: dict[str, str], paper: bool) -> pd.DataFrame:
    rows = []
    for model in ours.index:
        row: dict[str, object] = {"model": model_label(model)}
        for key in ("seeds", "n_splits", "spread", "lr", "profile", "data"):
            if key in ours:
                row[key] = ours.loc[model, key]
        for metric in labels:
            scale = 1.0 if metric == "roc_auc" else 100.0
            for suffix in ("", "_std", "_min", "_max", "_low", "_high"):
                column = f"{metric}{suffix}"
                row[column] = float(ours.loc[model, column]) * scale if column in ours else np.nan
            if paper:
                row[f"{metric}_paper"] = PAPER_TABLE2.get(model, {}).get(metric, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def table2(results: dict[str, Sequence[RunResult]], block: str = "test") -> pd.DataFrame:
    """Table 2: ours (mean and spread over splits or seeds, range, and the slide-level 95%
    interval of the configured split; percent, AUC as a fraction) beside the paper's values."""
    check_comparable(results)
    return _numeric(results_table(results, block).set_index("model"), METRIC_LABELS, True)


def grid_table2(result: G.GridResult) -> pd.DataFrame:
    """Table 2 from the model grid (:func:`aecnn_utils.tune.tune`): per model each of the
    paper's metrics as a :func:`aecnn_utils.grid.cell` (nested choices, seeds, slide-level
    interval), the paper's value beside it, AUC on new slides and the learning rates the splits
    chose."""
    rows = []
    for arm in result.grid.arms:
        row = {"Model": model_label(arm.name)}
        for metric, label in METRIC_LABELS.items():
            row[f"{label} (ours)"] = G.cell(result.estimate(arm.name, metric))
            paper = PAPER_TABLE2.get(arm.name, {}).get(metric)
            row[f"{label} (paper)"] = "-" if paper is None else (
                f"{paper:.3f}" if metric == "roc_auc" else f"{paper:.2f}")
        auc = result.estimate(arm.name, "roc_auc")
        row["AUC, new slides (95%)"] = G.new_slides_cell(auc)
        row["Learning rate (splits)"] = ", ".join(f"{c.removeprefix('lr ')} ({n})"
                                                  for c, n in auc.chosen)
        rows.append(row)
    return pd.DataFrame(rows)


def grid_numeric(result: G.GridResult, metrics: Sequence[str] = tuple(METRIC_LABELS),
                 setting: str = "cross") -> pd.DataFrame:
    """One row per arm, per metric key its value, ``_std`` (the table's spread), ``_low``,
    ``_high``, ``_new_low``, ``_new_high`` (percent, AUC as a fraction) and the paper's value
    (``_paper``, Table 2's models): the numbers behind :func:`grid_table2` and Fig. 2."""
    rows = []
    for arm in result.grid.arms:
        row: dict[str, Any] = {"model": model_label(arm.name), "arm": arm.name}
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


def table2_comparisons(result: G.GridResult, ours: str = "aecnn") -> list[G.Comparison]:
    """AECNN against every other model on the screening metrics (one Holm family)."""
    return G.compare(result, [(ours, a.name) for a in result.grid.arms if a.name != ours],
                     G.SCREENING)


def grid_summary(result: G.GridResult, comparisons: Sequence[G.Comparison]) -> str:
    """Table 2 in words, from the records: each model's AUC with its range on new slides and
    the optimism of choosing its learning rate once on all cells, then each paired comparison
    (AUC; the rest in the comparisons table)."""
    lines = []
    for arm in result.grid.arms:
        e = result.estimate(arm.name, "roc_auc")
        lines.append(f"- {model_label(arm.name)}: AUC {G.cell(e)} (new slides "
                     f"{G.new_slides_cell(e)}); with its learning rate chosen once on all "
                     f"cells ({e.all_cells_choice}) {e.all_cells:.3f} "
                     f"({e.all_cells - e.value:+.3f}).")
    labels = {a.name: model_label(a.name) for a in result.grid.arms}
    lines += [f"- {G.words(c, labels)}." for c in comparisons if c.metric == "roc_auc"]
    frame = result.frame()
    auc = frame[frame["metric"] == "roc_auc"]
    lines.append(trained_on_line(zip(auc["arm"].map(model_label), auc["device"], strict=True)))
    return "\n".join(lines) + "\n"


def write_grid(result: G.GridResult, comparisons: Sequence[G.Comparison], stem: str | Path,
               caption: str, pretty: pd.DataFrame) -> list[Path]:
    """A grid's table as :func:`write_table` writes one (the records as ``stem.csv``, the
    readable table as ``.md`` and ``.tex``) and its comparisons as
    ``stem_comparisons.csv``."""
    stem = Path(stem)
    written = write_table(result.frame(), stem, caption, pretty)
    frame = G.comparisons_frame(comparisons)
    path = stem.with_name(f"{stem.name}_comparisons.csv")
    written.append(atomic_write_text(path, frame.to_csv(index=False)))
    return written


def screening_table(results: dict[str, Sequence[RunResult]], data: PreparedData,
                    config: RunConfig) -> pd.DataFrame:
    """Screening metrics (binary runs) of every model on the report cells, all of them and
    without the classes the training data lacks (columns ``<metric>_seen``), and the "all
    abnormal" / "all normal" reference classifiers on the same cells."""
    check_comparable(results)
    table = _numeric(results_table(results, "test").set_index("model"), SCREENING_LABELS, False)
    first = next(iter(results.values()))[0].metrics
    if "test_seen" in first:
        seen = _numeric(results_table(results, "test_seen").set_index("model"),
                        SCREENING_LABELS, False)
        for metric in SCREENING_LABELS:
            for suffix in ("", "_std", "_min", "_max"):
                table[f"{metric}_seen{suffix}"] = seen[f"{metric}{suffix}"].to_numpy()
    references = []
    for name, scores in reference_scores(config, data.frame("pool")).items():
        row: dict[str, object] = {"model": f"{name.capitalize()} (reference)"}
        for metric in SCREENING_LABELS:
            scale = 1.0 if metric == "roc_auc" else 100.0
            stats = scores[metric]
            row[metric], row[f"{metric}_std"] = stats["mean"] * scale, stats["sd"] * scale
            row[f"{metric}_min"], row[f"{metric}_max"] = stats["min"] * scale, \
                stats["max"] * scale
        references.append(row)
    return pd.concat([table, pd.DataFrame(references)], ignore_index=True)


def caption(numeric: pd.DataFrame, what: str) -> str:
    """What the numbers of a table are, from the table itself."""
    row = numeric.iloc[0]
    n_splits, seeds = int(row.get("n_splits", 1)), int(row.get("seeds", 1))
    splits = (f"{n_splits} selection/report splits of the validation/test cells (epoch and "
              "threshold chosen on each selection half, scored on its report half)")
    if n_splits > 1 and seeds == 1:
        how = f"mean ± sd over {splits}, from one training per model"
        where = ("of that mean (every split rescored on each draw of slides, its choices held "
                 "fixed)")
    elif n_splits > 1:
        how = (f"mean over {seeds} training seeds of each seed's mean over {splits}; ± sd over "
               "the seeds")
        where = "(the seeds' intervals of their split means, averaged)"
    else:
        how = f"mean ± sd over {seeds} seed(s)"
        where = "of the first seed"
    return (f"{what} regenerated by aecnn-kit: {how}; in brackets the 95% interval {where}, from "
            "a bootstrap over slides (patient_or_slide). Percent; AUC as a fraction.")


def interval_cell(row: pd.Series, col: str, digits: int, scale: float = 1.0) -> str:
    """``"mean ± sd [low, high]"`` of ``row[col]`` and its ``_std``/``_low``/``_high`` columns,
    times ``scale``; ``-`` where the value is missing, parts left out where they are."""
    if pd.isna(row[col]):
        return "-"
    text = M.format_mean_std(scale * row[col], scale * row.get(f"{col}_std", np.nan), digits,
                             percent=False)
    low, high = row.get(f"{col}_low", np.nan), row.get(f"{col}_high", np.nan)
    if not (pd.isna(low) or pd.isna(high)):
        text += f" [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
    return text


def format_table(numeric: pd.DataFrame, labels: dict[str, str],
                 suffix: str = "") -> pd.DataFrame:
    """Readable table: "mean ± sd [low, high]" per metric (``suffix`` picks e.g. the
    ``_seen`` columns), the paper's value beside it where the table has one."""
    out = pd.DataFrame({"Model": numeric["model"]})
    for metric, label in labels.items():
        digits = 3 if metric == "roc_auc" else 1
        col = f"{metric}{suffix}"
        if col not in numeric:
            continue

        def cell(r: pd.Series, col: str = col, digits: int = digits) -> str:
            return interval_cell(r, col, digits)

        paper = f"{metric}_paper" in numeric
        out[f"{label} (ours)" if paper else label] = numeric.apply(cell, axis=1)
        if paper:
            out[f"{label} (paper)"] = numeric[f"{metric}_paper"].map(  # as the paper prints it
                lambda v, d=3 if metric == "roc_auc" else 2: "-" if pd.isna(v) else f"{v:.{d}f}")
    return out


def format_table2(numeric: pd.DataFrame) -> pd.DataFrame:
    """Readable Table 2 (see :func:`format_table`)."""
    return format_table(numeric, METRIC_LABELS)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no index)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(numeric: pd.DataFrame, stem: str | Path, caption: str,
                pretty: pd.DataFrame | None = None) -> list[Path]:
    """Write a table as ``stem.csv`` (numbers), ``stem.md`` and ``stem.tex`` (``pretty``,
    default the formatted Table 2), with ``caption`` and the data provenance."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pretty = format_table2(numeric) if pretty is None else pretty
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
                    warnings.warn(f"{run.run_dir} has no best.pt (a run folder copied without "
                                  f"its checkpoints): {model}'s accuracy on its training cells "
                                  "is left out of Figure 1", stacklevel=2)
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
    """:func:`aecnn_utils.calibration.reliability` of a run's best epoch on its test (report)
    cells, from its stored logits (``epochs.npz``) and at its stored temperature (fitted on
    its validation cells, ``metrics.json``)."""
    logits = np.load(run.run_dir / "epochs.npz")["logits"][run.metrics["best_epoch"] - 1]
    rows = data.index["test"]
    return reliability(data.frame("pool")["label"].to_numpy()[rows], logits[rows],
                       run.metrics["calibration"]["temperature"])


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
            f"- {model_label(r['model'])}: temperature {r['temperature']:.2f} "
            f"({r['temperature_min']:.2f}-{r['temperature_max']:.2f}{bound}); ECE "
            f"{r['ece']:.3f} as "
            f"trained, {r['ece_calibrated']:.3f} scaled (lower in {int(r['ece_lower'])} of "
            f"{int(r['n'])} scorings); NLL {r['nll']:.3f} -> {r['nll_calibrated']:.3f}; "
            f"Brier {r['brier']:.3f} -> {r['brier_calibrated']:.3f}.")
    return "\n".join(lines)


def format_calibration(table: pd.DataFrame) -> pd.DataFrame:
    """The calibration table as "mean (lowest-highest)" cells."""
    out = pd.DataFrame({"Model": table["model"].map(model_label)})
    for name, label in (("temperature", "Temperature"), ("ece", "ECE"),
                        ("ece_calibrated", "ECE, scaled"), ("nll", "NLL"),
                        ("nll_calibrated", "NLL, scaled"), ("brier", "Brier"),
                        ("brier_calibrated", "Brier, scaled")):
        out[label] = [f"{r[name]:.3f} ({r[f'{name}_min']:.3f}-{r[f'{name}_max']:.3f})"
                      for _, r in table.iterrows()]
    return out


def roc_curves(results: dict[str, Sequence[RunResult]],
               part: str = "test") -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Figure 3's data: ROC curve (fpr, tpr) and AUC of each model's first run."""
    curves = {}
    for model, runs in results.items():
        y, probs = stored_predictions(runs[0], part)
        fpr, tpr, _ = M.roc_points(y, probs[:, 1])
        curves[model] = (fpr, tpr, float(M.classification_metrics(y, probs)["roc_auc"]))
    return curves


def _interval(row: pd.Series, metric: str, digits: int) -> str:
    text = M.format_mean_std(row[metric], row.get(f"{metric}_std"), digits, percent=False)
    if not pd.isna(row.get(f"{metric}_low")):
        text += f" [{row[f'{metric}_low']:.{digits}f}, {row[f'{metric}_high']:.{digits}f}]"
    return text


def compare_intervals(low: float, high: float, other_low: float, other_high: float) -> str:
    """``"higher"`` or ``"lower"`` when the interval ``[low, high]`` lies wholly above or below
    ``[other_low, other_high]``; ``"not shown"`` when they overlap (the kit's one rule for
    calling a difference)."""
    if low > other_high:
        return "higher"
    if high < other_low:
        return "lower"
    return "not shown"


def _verdict(me: pd.Series, other: pd.Series, label: str) -> str:
    side = compare_intervals(me["roc_auc_low"], me["roc_auc_high"], other["roc_auc_low"],
                             other["roc_auc_high"])
    if side == "not shown":
        return "a difference in AUC is not shown (the slide-level intervals overlap)"
    return f"{label}'s AUC is {side} beyond the slide-level intervals"


def summary_text(screening: pd.DataFrame, results: dict[str, Sequence[RunResult]],
                 ours: str = "aecnn") -> str:
    """The results in words, generated from the screening table (for the README and notebook
    04). A difference whose slide-level 95% intervals overlap is reported as "not shown"."""
    rows = screening.set_index("model")
    models = [m for m in rows.index if not m.endswith("(reference)")]
    lines = [f"- {m}: AUC {_interval(rows.loc[m], 'roc_auc', 3)}, balanced accuracy "
             f"{_interval(rows.loc[m], 'balanced_accuracy', 1)}%." for m in models]
    label = model_label(ours)
    if label in models:
        for model in (m for m in models if m != label):
            key = next(k for k in results if model_label(k) == model)
            wins = _split_wins(results.get(ours, []), results.get(key, []))
            more = (f"; {label} has the higher AUC on {wins[0]} of {wins[1]} report halves"
                    if wins else "")
            verdict = _verdict(rows.loc[label], rows.loc[model], label)
            lines.append(f"- {label} vs {model}: {verdict}{more}.")
    always = rows.loc["All abnormal (reference)"]
    lines.append(f"- {always['prevalence']:.1f}% of the report cells are abnormal: calling every "
                 f"cell abnormal scores accuracy {always['accuracy']:.1f}% and F1 "
                 f"{always['f1']:.1f}%, but balanced accuracy {always['balanced_accuracy']:.1f}%"
                 " and AUC 0.5.")
    lines.append(trained_on_line((model_label(key), trained_on(r))
                                 for key, runs in results.items() for r in runs))
    minutes = {model_label(key): np.mean([r.metrics["train_seconds"] for r in runs]) / 60
               for key, runs in results.items() if runs}
    lines.append("- Training time per run (wall clock on its device, as the run recorded it; "
                 "other work may have shared the machine): "
                 + ", ".join(f"{label} {m:.0f} min" for label, m in minutes.items()) + ".")
    top = rows.loc[models, "roc_auc"].idxmax()
    best = rows.loc[top]
    lines.append(f"- {top} has the highest mean AUC; at 95% specificity its sensitivity is "
                 f"{best['sens_at_spec95']:.1f}%, at 95% sensitivity its specificity "
                 f"{best['spec_at_sens95']:.1f}% (read off the report cells' ROC curve).")
    if "roc_auc_seen" in rows:
        lines.append(f"- Without the classes no training cell resembles (Herlev's columnar "
                     f"cells), {top}'s AUC is {best['roc_auc_seen']:.3f} and its balanced "
                     f"accuracy {best['balanced_accuracy_seen']:.1f}%.")
    return "\n".join(lines) + "\n"


def trained_on_line(pairs: Iterable[tuple[str, str]], what: str = "") -> str:
    """``- Trained on<what> cpu: A, B; cuda: C.`` from (name, device) pairs, devices in order of
    appearance, each name once."""
    devices: dict[str, list[str]] = {}
    for name, device in pairs:
        names = devices.setdefault(device, [])
        if name not in names:
            names.append(name)
    return (f"- Trained on{what} "
            + "; ".join(f"{device}: {', '.join(names)}" for device, names in devices.items())
            + ".")


def _split_wins(ours: Sequence[RunResult], other: Sequence[RunResult]) -> tuple[int, int] | None:
    """On how many report halves (first seed) our AUC beats the other model's."""
    if not ours or not other or "splits" not in ours[0].metrics \
            or "splits" not in other[0].metrics:
        return None
    a = [s["test"]["roc_auc"] for s in ours[0].metrics["splits"]["per_split"]]
    b = [s["test"]["roc_auc"] for s in other[0].metrics["splits"]["per_split"]]
    return sum(x > y for x, y in zip(a, b, strict=True)), len(a)
