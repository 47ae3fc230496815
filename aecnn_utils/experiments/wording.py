"""The shared formatters of the kit's tables and sentences: metric names, table cells with
their intervals, comparisons in words, the threshold a table is scored at."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aecnn_utils.experiments.paired import Comparison
    from aecnn_utils.experiments.scores import Estimate, GridResult, Metric

#: Words for the settings, in tables and sentences.
SETTING_WORDS: dict[str, str] = {"cross": "across datasets", "in_domain": "in-domain"}

#: Readable metric names.
METRIC_WORDS: dict[str, str] = {
    "roc_auc": "AUC", "balanced_accuracy": "Bal. acc. (%)",
    "sens_at_spec95": "Sens. @ 95% spec. (%)", "accuracy": "Accuracy (%)",
    "precision": "Precision (%)", "recall": "Recall (%)", "specificity": "Specificity (%)",
    "f1": "F1-Score (%)", "sensitivity": "Sens. (%)"}


def metric_label(key: str) -> str:
    """A column name for a metric key (``recall@threshold|carcinoma_in_situ`` reads
    "Recall (%), at the selection threshold, carcinoma in situ")."""
    name, _, cls = key.partition("|")
    name, _, at = name.partition("@")
    label = METRIC_WORDS.get(name, name)
    return label + (", at the selection threshold" if at else "") + (
        f", {cls.replace('_', ' ')}" if cls else "")


def _scale(key: str) -> tuple[float, int]:
    return (1.0, 3) if key.startswith("roc_auc") else (100.0, 1)


def cell(e: Estimate) -> str:
    """A table cell: ``value ± sd [low, high]`` (AUC as a fraction, the rest in percent)."""
    scale, digits = _scale(e.metric)
    if not np.isfinite(e.value):
        return "-"
    text = f"{scale * e.value:.{digits}f}"
    if np.isfinite(e.spread):
        text += f" ± {scale * e.spread:.{digits}f}"
    if np.isfinite(e.low) and np.isfinite(e.high):
        text += f" [{scale * e.low:.{digits}f}, {scale * e.high:.{digits}f}]"
    return text


def new_slides_cell(e: Estimate) -> str:
    """The new-slides range as ``low-high``."""
    scale, digits = _scale(e.metric)
    if not (np.isfinite(e.new_low) and np.isfinite(e.new_high)):
        return "-"
    return f"{scale * e.new_low:.{digits}f}-{scale * e.new_high:.{digits}f}"


def words(c: Comparison, labels: Mapping[str, str] | None = None,
          verdict: bool = True) -> str:
    """A comparison in words: ``first vs second, AUC: +0.050 [-0.010, 0.110] (Holm ...),
    first higher on 14 of 20 report halves: not shown`` (the verdict left out with
    ``verdict=False``, for a caller that words it itself)."""
    labels = labels or {}
    scale, digits = _scale(c.metric)
    name = metric_label(c.metric).removesuffix(" (%)")
    unit = "" if scale == 1 else " points"
    halves = (f"; {labels.get(c.first, c.first)} higher on {c.wins} of {c.n_splits} report "
              "halves" if c.n_splits > 1 else "")
    said = {"higher": "higher, shown", "lower": "lower, shown"}.get(c.verdict, "not shown")
    return (f"{labels.get(c.first, c.first)} vs {labels.get(c.second, c.second)}, {name}: "
            f"{scale * c.diff:+.{digits}f}{unit} [{scale * c.low:+.{digits}f}, "
            f"{scale * c.high:+.{digits}f}] (Holm interval [{scale * c.holm_low:+.{digits}f}, "
            f"{scale * c.holm_high:+.{digits}f}], p {c.p_holm:.3f} over {c.family})"
            f"{halves}" + (f": **{said}**" if verdict else ""))


def training_line(result: GridResult, labels: Mapping[str, str] | None = None,
                  setting: str = "cross") -> str:
    """``- Training time per run ...: A 1.4 min, B 8.0 min.``: each arm's mean over its runs
    in ``setting``, as each run recorded it (the reference, fitted not trained, left out)."""
    labels = labels or {}
    minutes: dict[str, list[float]] = {}
    for (s, arm, _), runs in result.runs.items():
        if s == setting and not result.grid.arm(arm).reference:
            minutes.setdefault(arm, []).extend(r.metrics.get("train_seconds", np.nan) / 60
                                               for r in runs)
    return ("- Training time per run (wall clock on its device, as each run recorded it; other "
            f"work may have shared the machine; {SETTING_WORDS[setting]}): " + ", ".join(
                f"{labels.get(a, a)} {np.nanmean(m):.1f} min" for a, m in minutes.items() if m)
            + ".")


#: Metrics that need no threshold.
THRESHOLD_FREE: frozenset[str] = frozenset({"roc_auc", "sens_at_spec95"})


def threshold_words(metrics: Sequence[Metric]) -> str:
    """Which threshold a table's metrics are scored at: 0.5, or the threshold each run chose
    on its split's selection half."""
    groups: dict[bool, dict[str, None]] = {}
    for m in metrics:
        if m.name not in THRESHOLD_FREE:
            groups.setdefault(m.at_threshold, {})[metric_label(m.name).removesuffix(" (%)")] = None
    if not groups:
        return "AUC and sensitivity at 95% specificity need no threshold."
    where = {False: "at the threshold 0.5",
             True: "at the threshold each run chose on its split's selection half"}
    return ("Scored " + "; ".join(f"{', '.join(names)} {where[at]}"
                                  for at, names in groups.items())
            + " (AUC and sensitivity at 95% specificity need none).")


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
