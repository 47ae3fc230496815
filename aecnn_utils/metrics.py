"""Evaluation metrics of AECNN (paper, section 4 "Evaluation Strategy" and section 5).

The paper reports accuracy, sensitivity (= recall), specificity, precision, F1-score and AUC
(Table 2), "averaged across five independent runs". This module computes them from class
probabilities, with numpy only, fast enough to be called by the trainer every epoch:

* :func:`classification_metrics` -- all metrics of one prediction set, binary or multi-class,
  with a per-class breakdown and the confusion matrix.
* :func:`bootstrap_ci` -- percentile bootstrap confidence intervals over test cells, or a cluster
  bootstrap over slides/patients (``groups=``). Fully vectorised (confusion counts and a tie-aware
  Mann-Whitney AUC per replicate), for binary and multi-class inputs alike.
* :func:`threshold_for_sensitivity` -- the operating point chosen on the *validation* set
  (Herlev in the paper) and applied unchanged to the *test* set (CRIC); choosing a threshold on
  the test set itself would bias every test metric upwards.
* :func:`summarize_seeds` and :func:`format_mean_std` -- mean +- std across independent runs.
* :func:`roc_points` -- ROC curve coordinates for the ROC figure.

Conventions
-----------
* ``y_true`` holds integer labels in ``[0, C)``; ``probs`` is ``(N, C)`` with rows summing to 1
  (within :data:`ROW_SUM_ATOL`). For ``C == 2`` class 1 is "abnormal", the positive class, and
  predictions are ``probs[:, 1] >= threshold`` (default 0.5); for ``C > 2`` predictions are the
  argmax and a threshold is an error.
* Undefined values (0/0: precision without positive predictions, AUC when ``y_true`` holds a
  single class, ...) are ``float("nan")``; nothing raises and nothing warns for them.
* Multi-class ``precision``, ``recall``, ``specificity`` and ``f1`` are macro averages of the
  one-vs-rest per-class values over ``labels = range(C)``, skipping undefined (NaN) per-class
  values -- the same as scikit-learn's ``average="macro", zero_division=np.nan``.
  ``balanced_accuracy`` is the mean recall over the classes present in ``y_true`` (as
  ``sklearn.metrics.balanced_accuracy_score``); in the multi-class case it equals macro recall.
  Multi-class ``roc_auc`` is the one-vs-rest macro AUC over the classes *present* in ``y_true``
  (scikit-learn refuses the computation when a class is absent; here the absent class is skipped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

__all__ = [
    "BINARY_METRICS",
    "DEFAULT_BOOTSTRAP_METRICS",
    "MULTICLASS_METRICS",
    "ROW_SUM_ATOL",
    "TABLE_METRICS",
    "bootstrap_ci",
    "classification_metrics",
    "format_mean_std",
    "roc_points",
    "summarize_seeds",
    "threshold_for_sensitivity",
]

#: Scalar metrics of :func:`classification_metrics` that :func:`bootstrap_ci` accepts (C == 2).
BINARY_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "sensitivity",
    "specificity",
    "f1",
    "roc_auc",
    "npv",
)
#: Scalar metrics accepted by :func:`bootstrap_ci` for C > 2 (no NPV: it is a binary notion).
MULTICLASS_METRICS: tuple[str, ...] = BINARY_METRICS[:-1]
DEFAULT_BOOTSTRAP_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "roc_auc",
    "balanced_accuracy",
)
#: Columns of the paper's Table 2, in its order.
TABLE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
#: Tolerance on ``probs.sum(axis=1) == 1`` (loose enough for float16 softmax outputs).
ROW_SUM_ATOL: float = 1e-3
_RANGE_TOL = 1e-6
# Bootstrap replicates are processed in chunks of at most this many (replicate, cell) weights.
_MAX_CHUNK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- validation


def _as_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    """``y_true`` as a non-empty 1-D int64 array (integer-valued floats and bools accepted)."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D with shape (N,), got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
        return y.astype(np.int64)
    raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")


def _check_label_range(y: np.ndarray, n_classes: int) -> None:
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        shown = np.unique(y[bad])[:5].tolist()
        raise ValueError(
            f"y_true has labels outside [0, {n_classes}) (C = {n_classes} probability columns): "
            f"{shown}"
        )


def _check_unit_interval(values: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if values.min() < -_RANGE_TOL or values.max() > 1.0 + _RANGE_TOL:
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{values.min():.6g}, {values.max():.6g}]"
        )


def _validate_inputs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(y int64 (N,), probs float64 (N, C))``; raises ``ValueError`` on bad input."""
    y = _as_labels(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D with shape (N, C), got shape {p.shape}")
    if p.shape[1] < 2:
        raise ValueError(f"probs must have C >= 2 columns, got shape {p.shape}")
    if p.shape[0] != y.size:
        raise ValueError(
            f"y_true and probs disagree on N: y_true has {y.size} labels, probs has "
            f"{p.shape[0]} rows"
        )
    _check_unit_interval(p, "probs")
    row_sums = p.sum(axis=1)
    off = np.abs(row_sums - 1.0) > ROW_SUM_ATOL
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"probs rows must sum to 1 (class probabilities, e.g. a softmax output); "
            f"{int(off.sum())} rows do not, e.g. row {i} sums to {row_sums[i]:.6g}"
        )
    _check_label_range(y, p.shape[1])
    return y, p


def _validate_scores(y_true: Any, p_pos: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked binary ``(y in {0, 1} (N,), p_pos float64 (N,))``."""
    y = _as_labels(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_pos must be 1-D with shape (N,), got shape {p.shape}")
    if p.size != y.size:
        raise ValueError(f"y_true and p_pos disagree on N: {y.size} labels, {p.size} scores")
    _check_unit_interval(p, "p_pos")
    _check_label_range(y, 2)
    return y, p


def _resolve_threshold(threshold: float | None, n_classes: int) -> float | None:
    """The decision threshold: 0.5 by default for C == 2, ``None`` (argmax) for C > 2."""
    if n_classes > 2:
        if threshold is not None:
            raise ValueError(
                f"threshold applies only to binary probabilities (C == 2), got C = {n_classes}; "
                "multi-class predictions use the argmax"
            )
        return None
    if threshold is None:
        return 0.5
    t = float(threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return t


def _class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    if class_names is None:
        return [str(k) for k in range(n_classes)]
    names = [str(c) for c in class_names]
    if len(names) != n_classes:
        raise ValueError(f"class_names has {len(names)} names, probs has C = {n_classes} columns")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    return names


def _predict(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted labels: ``p1 >= threshold`` for C == 2, argmax otherwise."""
    if threshold is None:
        return np.argmax(probs, axis=1).astype(np.int64)
    return (probs[:, 1] >= threshold).astype(np.int64)


# --------------------------------------------------------------------------- core computations


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (no warnings)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over ``axis`` skipping NaN; NaN (and no warning) when every value is NaN."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return _safe_div(total, finite.sum(axis=axis))


def _confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class one-vs-rest rates of a batch of confusion matrices ``(B, C, C)``.

    Returns arrays ``(B, C)`` (precision, recall, specificity, f1, support) and ``(B,)``
    (accuracy).
    """
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    n = cm.sum(axis=(1, 2))
    fp = predicted - tp
    fn = support - tp
    tn = n[:, None] - support - fp
    return {
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "f1": _safe_div(2.0 * tp, 2.0 * tp + fp + fn),
        "support": support,
        "accuracy": _safe_div(tp.sum(axis=1), n),
    }


def _aggregate(stats: dict[str, np.ndarray], n_classes: int) -> dict[str, np.ndarray]:
    """Scalar metrics ``(B,)`` from :func:`_confusion_stats` (class 1 for C == 2, else macro)."""
    out = {
        "accuracy": stats["accuracy"],
        "balanced_accuracy": _nanmean(stats["recall"]),
    }
    keys = ("precision", "recall", "specificity", "f1")
    if n_classes == 2:
        out.update({k: stats[k][:, 1] for k in keys})
        out["npv"] = stats["precision"][:, 0]
    else:
        out.update({k: _nanmean(stats[k]) for k in keys})
    out["sensitivity"] = out["recall"]
    return out


def _weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of ``weights`` ``(B, N)`` (cell multiplicities), ties counted as 1/2.

    Mann-Whitney form: AUC = P(s+ > s-) + P(s+ == s-) / 2 over (positive, negative) pairs,
    each cell counted ``weights[b, i]`` times. Scores are sorted once, cells with equal scores
    are pooled (``np.add.reduceat``), and the pair count is a cumulative sum -- O(B * N), no
    per-replicate sort. NaN for rows without positives or without negatives.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos_w = w * positive[order]
    neg_w = w - pos_w
    pos = np.add.reduceat(pos_w, starts, axis=1)
    neg = np.add.reduceat(neg_w, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    wins = np.einsum("bu,bu->b", pos, neg_below + 0.5 * neg)
    return _safe_div(wins, pos.sum(axis=1) * neg.sum(axis=1))


def _class_auc(y: np.ndarray, probs: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """One-vs-rest AUC of class ``k`` (scores ``probs[:, k]``) per row of ``weights``."""
    return _weighted_auc(probs[:, k], (y == k).astype(np.float64), weights)


def _batch_metrics(
    y: np.ndarray,
    probs: np.ndarray,
    pred: np.ndarray,
    weights: np.ndarray,
    metrics: Sequence[str],
) -> dict[str, np.ndarray]:
    """Scalar ``metrics`` for each row of cell weights ``(B, N)`` (one bootstrap replicate).

    Confusion matrices of all replicates come from one matrix product with the one-hot
    (true, predicted) code of every cell.
    """
    n_classes = probs.shape[1]
    codes = y * n_classes + pred
    onehot = np.zeros((y.size, n_classes * n_classes))
    onehot[np.arange(y.size), codes] = 1.0
    cm = (weights @ onehot).reshape(-1, n_classes, n_classes)
    out = _aggregate(_confusion_stats(cm), n_classes)
    if "roc_auc" in metrics:
        if n_classes == 2:
            out["roc_auc"] = _class_auc(y, probs, weights, 1)
        else:
            per_class = np.stack(
                [_class_auc(y, probs, weights, k) for k in range(n_classes)], axis=1
            )
            out["roc_auc"] = _nanmean(per_class)
    return {m: out[m] for m in metrics}


# --------------------------------------------------------------------------- public: metrics


def classification_metrics(
    y_true: Any,
    probs: Any,
    threshold: float | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All evaluation metrics of one set of class probabilities.

    Args:
        y_true: integer labels ``(N,)`` in ``[0, C)``.
        probs: class probabilities ``(N, C)``, rows summing to 1, ``C >= 2``.
        threshold: binary only -- predict class 1 when ``probs[:, 1] >= threshold``
            (default 0.5). Must be ``None`` for ``C > 2`` (argmax).
        class_names: names of the ``C`` classes for ``per_class`` (default ``"0"``, ``"1"``, ...).

    Returns:
        For ``C == 2`` (class 1 positive): ``accuracy``, ``balanced_accuracy``, ``precision``,
        ``recall``, ``sensitivity`` (= recall), ``specificity``, ``f1``, ``roc_auc``, ``npv``,
        ``threshold``, ``n``, ``n_positive``, ``confusion_matrix`` (2x2 nested list, rows = true,
        columns = predicted) and ``per_class``. For ``C > 2``: macro ``precision``, ``recall``,
        ``sensitivity``, ``specificity``, ``f1``, one-vs-rest macro ``roc_auc`` (over the classes
        present in ``y_true``), ``accuracy``, ``balanced_accuracy``, ``n``, ``confusion_matrix``
        (C x C, absent classes included) and ``per_class``. ``per_class`` maps each class name to
        ``{precision, recall, specificity, f1, support, roc_auc}`` (one-vs-rest). Undefined values
        are ``nan``.

    Raises:
        ValueError: on bad shapes, non-finite or out-of-range probabilities, rows not summing
            to 1, labels outside ``[0, C)``, or a threshold outside [0, 1] / with ``C > 2``.
    """
    y, p = _validate_inputs(y_true, probs)
    n_classes = p.shape[1]
    thr = _resolve_threshold(threshold, n_classes)
    names = _class_names(class_names, n_classes)
    pred = _predict(p, thr)
    cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes)
    stats = _confusion_stats(cm[None].astype(np.float64))
    scalars = _aggregate(stats, n_classes)
    ones = np.ones((1, y.size))
    class_auc = np.array([_class_auc(y, p, ones, k)[0] for k in range(n_classes)])
    scalars["roc_auc"] = np.array([class_auc[1] if n_classes == 2 else _nanmean(class_auc)])

    out: dict[str, Any] = {k: float(scalars[k][0]) for k in MULTICLASS_METRICS}
    if n_classes == 2:
        out["npv"] = float(scalars["npv"][0])
        out["threshold"] = thr
    out["n"] = int(y.size)
    if n_classes == 2:
        out["n_positive"] = int(cm[1].sum())
    out["confusion_matrix"] = cm.tolist()
    out["per_class"] = {
        name: {
            "precision": float(stats["precision"][0, k]),
            "recall": float(stats["recall"][0, k]),
            "specificity": float(stats["specificity"][0, k]),
            "f1": float(stats["f1"][0, k]),
            "support": int(cm[k].sum()),
            "roc_auc": float(class_auc[k]),
        }
        for k, name in enumerate(names)
    }
    return out


# --------------------------------------------------------------------------- public: bootstrap


def _check_metric_names(metrics: Sequence[str], n_classes: int) -> tuple[str, ...]:
    allowed = BINARY_METRICS if n_classes == 2 else MULTICLASS_METRICS
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise ValueError("metrics is empty")
    unknown = [m for m in names if m not in allowed]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown} for C = {n_classes}; choose from {list(allowed)}"
        )
    return names


def _group_index(groups: Sequence | None, n: int) -> tuple[np.ndarray | None, int]:
    """``(index of each cell's group, number of groups)``; ``(None, n)`` without groups."""
    if groups is None:
        return None, n
    g = np.asarray(groups)
    if g.ndim != 1 or g.size != n:
        raise ValueError(f"groups must be 1-D with one entry per cell (N = {n}), got {g.shape}")
    uniques, index = np.unique(g, return_inverse=True)
    return index.astype(np.int64), int(uniques.size)


def _resample_weights(
    rng: np.random.Generator, n_rep: int, group_index: np.ndarray | None, n_units: int
) -> np.ndarray:
    """Cell multiplicities ``(n_rep, N)`` of ``n_rep`` bootstrap replicates.

    Draws ``n_units`` units (cells, or groups when ``group_index`` is given) with replacement
    per replicate; a cell's weight is how often it (or its group) was drawn.
    """
    draws = rng.integers(0, n_units, size=(n_rep, n_units))
    draws += (np.arange(n_rep) * n_units)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_rep * n_units).reshape(n_rep, n_units)
    counts = counts.astype(np.float64)
    return counts if group_index is None else counts[:, group_index]


def _percentile_interval(value: float, replicates: np.ndarray, confidence: float) -> dict:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        low = high = float("nan")
    else:
        alpha = (1.0 - confidence) / 2.0
        low, high = (float(q) for q in np.quantile(finite, [alpha, 1.0 - alpha]))
    return {"value": float(value), "low": low, "high": high, "n_boot": int(finite.size)}


def bootstrap_ci(
    y_true: Any,
    probs: Any,
    metrics: Sequence[str] = DEFAULT_BOOTSTRAP_METRICS,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float | None = None,
    groups: Sequence | None = None,
) -> dict[str, dict]:
    """Percentile bootstrap confidence intervals of scalar metrics.

    Each replicate resamples the ``N`` test cells with replacement (the threshold and the
    predictions stay fixed) and recomputes the metrics. With ``groups`` (e.g. the slide or
    patient of each cell) it is a *cluster* bootstrap: the groups are resampled with replacement
    and every cell of a drawn group enters the replicate. Cells cut from one slide are
    correlated (same staining, same patient, same scanner), so the cell-level bootstrap treats
    them as independent and its interval is too narrow; pass ``groups`` whenever the grouping is
    known.

    Replicates in which a metric is undefined (e.g. no positive cell drawn, so no AUC) are
    dropped for that metric; ``n_boot`` in the result counts the finite replicates kept.
    Binary and multi-class inputs are both fully vectorised: all replicates' confusion matrices
    come from one matrix product and the AUC from a tie-aware Mann-Whitney statistic on cell
    weights (1000 replicates of 2000 binary cells take about 0.1 s on 2 CPU cores). Replicates
    are processed in chunks to bound memory for large ``N``.

    Args:
        y_true, probs, threshold: as in :func:`classification_metrics`.
        metrics: names from :data:`BINARY_METRICS` (C == 2) or :data:`MULTICLASS_METRICS`.
        n_boot: number of bootstrap replicates (>= 1).
        confidence: two-sided coverage of the percentile interval, in (0, 1).
        seed: seed of ``numpy.random.default_rng``; the result is deterministic given it.
        groups: optional group label of every cell (length N) for the cluster bootstrap.

    Returns:
        ``{metric: {"value": point estimate on the full set, "low": ..., "high": ...,
        "n_boot": number of finite replicates}}``; ``low``/``high`` are NaN if none is finite.
    """
    y, p = _validate_inputs(y_true, probs)
    n_classes = p.shape[1]
    thr = _resolve_threshold(threshold, n_classes)
    names = _check_metric_names(metrics, n_classes)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    group_index, n_units = _group_index(groups, y.size)

    point = classification_metrics(y, p, threshold=thr)
    pred = _predict(p, thr)
    rng = np.random.default_rng(seed)
    replicates = {m: np.empty(int(n_boot)) for m in names}
    chunk = max(1, min(int(n_boot), _MAX_CHUNK_ELEMENTS // max(y.size, n_units)))
    for start in range(0, int(n_boot), chunk):
        n_rep = min(chunk, int(n_boot) - start)
        weights = _resample_weights(rng, n_rep, group_index, n_units)
        values = _batch_metrics(y, p, pred, weights, names)
        for m in names:
            replicates[m][start : start + n_rep] = values[m]
    return {m: _percentile_interval(point[m], replicates[m], float(confidence)) for m in names}


# --------------------------------------------------------------------------- public: thresholds


def threshold_for_sensitivity(y_true: Any, p_pos: Any, target: float = 0.95) -> float:
    """Largest threshold ``t`` with sensitivity ``>= target`` when predicting ``p_pos >= t``.

    Choose it on the validation set and apply it unchanged to the test set (choosing it on the
    test set would make the test sensitivity optimistic by construction). The result is one of
    the positive scores, so any threshold above it gives a sensitivity below ``target``.

    Args:
        y_true: binary labels ``(N,)`` in {0, 1} (1 = abnormal).
        p_pos: probability of class 1 ``(N,)``, in [0, 1].
        target: required sensitivity, in (0, 1].

    Raises:
        ValueError: on bad inputs, a target outside (0, 1], or no positive case.
    """
    y, p = _validate_scores(y_true, p_pos)
    if not (0.0 < float(target) <= 1.0):
        raise ValueError(f"target sensitivity must be in (0, 1], got {target!r}")
    pos_scores = np.sort(p[y == 1])[::-1]
    n_pos = pos_scores.size
    if n_pos == 0:
        raise ValueError("y_true has no positive (class 1) case: sensitivity is undefined")
    recall_at_k = np.arange(1, n_pos + 1) / n_pos
    k = int(np.argmax(recall_at_k >= float(target)))
    return float(pos_scores[k])


def roc_points(y_true: Any, p_pos: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the ROC curve (``sklearn.metrics.roc_curve``).

    ``thresholds[0]`` is ``inf`` (nothing predicted positive). Raises ``ValueError`` when
    ``y_true`` lacks positives or negatives.
    """
    y, p = _validate_scores(y_true, p_pos)
    if y.min() == y.max():
        raise ValueError("a ROC curve needs both positive and negative cases in y_true")
    fpr, tpr, thresholds = roc_curve(y, p)
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------- public: reporting


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def summarize_seeds(
    results: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Mean, sample std (ddof=1) and count of each metric across independent runs (seeds).

    Args:
        results: one metrics dict per run (e.g. :func:`classification_metrics` outputs).
        metrics: metrics to summarise; default every numeric scalar present in all results
            (in the order of the first result; nested values such as ``per_class`` skipped).

    Returns:
        ``{metric: {"mean": ..., "std": ..., "n": number of runs}}``. ``std`` is NaN for a
        single run; a NaN in any run makes that metric's mean NaN.

    Raises:
        ValueError: on no results, or a requested metric missing or non-numeric in a run.
    """
    if len(results) == 0:
        raise ValueError("results is empty: nothing to summarise")
    if metrics is None:
        metrics = [
            k
            for k, v in results[0].items()
            if _is_number(v) and all(k in r and _is_number(r[k]) for r in results)
        ]
    else:
        for m in metrics:
            bad = [i for i, r in enumerate(results) if m not in r or not _is_number(r[m])]
            if bad:
                raise ValueError(f"metric {m!r} is missing or not a number in runs {bad}")
    summary: dict[str, dict[str, float]] = {}
    for m in metrics:
        values = np.array([float(r[m]) for r in results])
        std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        summary[m] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    return summary


def format_mean_std(mean: float, std: float, digits: int = 2, percent: bool = True) -> str:
    """``"93.87 ± 0.41"`` (``percent`` multiplies both by 100); just the mean if std is NaN."""
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{digits}f}"
    if std is None or not math.isfinite(std):
        return text
    return f"{text} ± {std * scale:.{digits}f}"
