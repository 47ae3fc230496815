"""Evaluation metrics of AECNN (paper, section 4 "Evaluation Strategy", Table 2), numpy only.

* :func:`classification_metrics` -- every metric of one prediction set, binary or multi-class.
* :func:`bootstrap_ci` -- 95% percentile bootstrap intervals, over cells or over slides.
* :func:`threshold_for_sensitivity` -- operating point chosen on the validation set and applied
  unchanged to the test set (choosing it on the test set would bias every test metric upwards).
* :func:`roc_points` -- the ROC figure's points.

Conventions
-----------
* ``y_true``: integer labels in ``[0, C)``; ``probs``: ``(N, C)``, rows summing to 1. For
  ``C == 2`` class 1 (abnormal) is the positive class, predicted when ``probs[:, 1] >=
  threshold`` (0.5 by default); for ``C > 2`` the argmax is predicted.
* Undefined values (0/0, AUC of a single-class set, ...) are NaN, without warnings.
* Multi-class ``precision``, ``recall``, ``specificity``, ``f1`` are macro averages of the
  one-vs-rest values, skipping NaN (scikit-learn's ``average="macro", zero_division=np.nan``);
  ``roc_auc`` is the one-vs-rest macro AUC and ``balanced_accuracy`` the mean recall, both over
  the classes present in ``y_true``.
* Screening metrics (``C == 2``), independent of the threshold, read off the empirical ROC curve
  of ``probs[:, 1]`` -- the points of ``sklearn.metrics.roc_curve(drop_intermediate=False)``:
  one per distinct score plus (0, 0), no interpolation. ``sens_at_spec90`` / ``95`` is the
  highest TPR over points with FPR <= 0.10 / 0.05 (the best sensitivity of any threshold with
  specificity >= 0.90 / 0.95); ``spec_at_sens90`` / ``95`` the highest 1 - FPR over points with
  TPR >= 0.90 / 0.95. NaN without positives or negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

#: Columns of the paper's Table 2, in its order.
TABLE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
#: Scalar metrics of :func:`classification_metrics`, all accepted by :func:`bootstrap_ci`;
#: those from ``"npv"`` on exist only for C == 2.
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "precision", "recall", "sensitivity", "specificity", "f1",
    "roc_auc", "npv", "prevalence",
    "sens_at_spec90", "sens_at_spec95", "spec_at_sens90", "spec_at_sens95",
)
#: The scalar metrics defined for C > 2 classes (the rest are binary only).
MULTICLASS_METRICS: tuple[str, ...] = SCALAR_METRICS[:SCALAR_METRICS.index("npv")]
_SCREENING = SCALAR_METRICS[-4:]
_ROW_SUM_ATOL = 1e-3  # loose enough for float16 softmax outputs
_ALPHA = (1.0 - 0.95) / 2.0  # two-sided 95% percentile interval
_MAX_CHUNK_ELEMENTS = 4_000_000  # bootstrap (replicate, cell) weights held at once


# --------------------------------------------------------------------------- validation
def _as_labels(y_true: Any) -> np.ndarray:
    """``y_true`` as a non-empty 1-D int64 array (integer-valued floats and bools accepted)."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y_true must be 1-D with shape (N,) and not empty, got {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("y_true must hold integer class labels, got non-integer values")
    elif y.dtype != np.bool_ and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def _check_values(y: np.ndarray, p: np.ndarray, n_classes: int, name: str) -> None:
    """Probabilities finite and in [0, 1]; labels in ``[0, n_classes)``."""
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if p.min() < -1e-6 or p.max() > 1.0 + 1e-6:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{p.min():.6g}, {p.max():.6g}]")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise ValueError(f"y_true has labels outside [0, {n_classes}): {np.unique(y[bad])[:5]}")


def _validate_inputs(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(y int64 (N,), probs float64 (N, C))``; raises ``ValueError`` on bad input."""
    y = _as_labels(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be 2-D with shape (N, C), C >= 2, got shape {p.shape}")
    if p.shape[0] != y.size:
        raise ValueError(f"y_true and probs disagree on N: {y.size} labels, {p.shape[0]} rows")
    _check_values(y, p, p.shape[1], "probs")
    row_sums = p.sum(axis=1)
    off = np.abs(row_sums - 1.0) > _ROW_SUM_ATOL
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(f"probs rows must sum to 1 (e.g. softmax); {int(off.sum())} do not, "
                         f"e.g. row {i} sums to {row_sums[i]:.6g}")
    return y, p


def _validate_scores(y_true: Any, p_pos: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked binary ``(y in {0, 1} (N,), p_pos float64 (N,))``."""
    y = _as_labels(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"p_pos must have the shape of y_true {y.shape}, got {p.shape}")
    _check_values(y, p, 2, "p_pos")
    return y, p


def _resolve_threshold(threshold: float | None, n_classes: int) -> float | None:
    """The decision threshold: 0.5 by default for C == 2, ``None`` (argmax) for C > 2."""
    if n_classes > 2:
        if threshold is not None:
            raise ValueError(f"threshold applies only to binary probabilities, got C = {n_classes}")
        return None
    t = 0.5 if threshold is None else float(threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return t


def _predict(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted labels: ``p1 >= threshold`` for C == 2, argmax otherwise."""
    if threshold is None:
        return np.argmax(probs, axis=1).astype(np.int64)
    return (probs[:, 1] >= threshold).astype(np.int64)


# --------------------------------------------------------------------------- computations
def _safe_div(num: Any, den: Any) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (no warnings)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis skipping NaN; NaN (no warning) when every value is NaN."""
    finite = np.isfinite(values)
    return _safe_div(np.where(finite, values, 0.0).sum(axis=-1), finite.sum(axis=-1))


def _confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """One-vs-rest rates ``(B, C)`` and accuracy ``(B,)`` of confusion matrices ``(B, C, C)``."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted, n = cm.sum(axis=2), cm.sum(axis=1), cm.sum(axis=(1, 2))
    fp, fn = predicted - tp, support - tp
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
    out = {"accuracy": stats["accuracy"], "balanced_accuracy": _nanmean(stats["recall"])}
    for k in ("precision", "recall", "specificity", "f1"):
        out[k] = stats[k][:, 1] if n_classes == 2 else _nanmean(stats[k])
    if n_classes == 2:
        out["npv"] = stats["precision"][:, 0]
        out["prevalence"] = _safe_div(stats["support"][:, 1], stats["support"].sum(axis=1))
    out["sensitivity"] = out["recall"]
    return out


def _pooled_counts(
    scores: np.ndarray, positive: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positive and negative counts ``(B, U)`` per distinct score, ascending.

    Scores are sorted once and tied cells pooled, for every row of cell multiplicities
    ``weights`` ``(B, N)`` at once (no per-replicate sort).
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos_w = w * positive[order]
    return np.add.reduceat(pos_w, starts, axis=1), np.add.reduceat(w - pos_w, starts, axis=1)


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC = P(s+ > s-) + P(s+ == s-) / 2 from :func:`_pooled_counts`."""
    neg_below = np.cumsum(neg, axis=1) - neg
    wins = np.einsum("bu,bu->b", pos, neg_below + 0.5 * neg)
    return _safe_div(wins, pos.sum(axis=1) * neg.sum(axis=1))


def _screening(pos: np.ndarray, neg: np.ndarray) -> dict[str, np.ndarray]:
    """Screening metrics (module docstring) from :func:`_pooled_counts`.

    Walking the distinct scores downwards gives the ROC points (besides (0, 0), which only
    ever adds TPR 0); cells of zero weight merely repeat a point.
    """
    tp, fp = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)
    tpr, fpr = _safe_div(tp, tp[:, -1:]), _safe_div(fp, fp[:, -1:])
    defined = (tp[:, -1] > 0) & (fp[:, -1] > 0)
    out = {}
    for name, max_fpr in zip(_SCREENING[:2], (0.10, 0.05), strict=True):
        out[name] = np.where(defined, np.where(fpr <= max_fpr, tpr, 0.0).max(axis=1), np.nan)
    for name, min_tpr in zip(_SCREENING[2:], (0.90, 0.95), strict=True):
        out[name] = np.where(defined, np.where(tpr >= min_tpr, 1.0 - fpr, 0.0).max(axis=1), np.nan)
    return out


def _class_auc(y: np.ndarray, probs: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """One-vs-rest AUC of class ``k`` per row of ``weights``."""
    return _auc(*_pooled_counts(probs[:, k], (y == k).astype(np.float64), weights))


def batch_metrics(
    y: np.ndarray, probs: np.ndarray, pred: np.ndarray, weights: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Scalar ``metrics`` ``(B,)`` for each row of cell weights ``(B, N)`` (bootstrap replicates).

    All confusion matrices come from one matrix product with the one-hot (true, predicted) code
    of every cell.
    """
    n_classes = probs.shape[1]
    onehot = np.zeros((y.size, n_classes * n_classes))
    onehot[np.arange(y.size), y * n_classes + pred] = 1.0
    cm = (weights @ onehot).reshape(-1, n_classes, n_classes)
    out = _aggregate(_confusion_stats(cm), n_classes)
    if n_classes == 2 and {"roc_auc", *_SCREENING} & set(metrics):
        pos, neg = _pooled_counts(probs[:, 1], (y == 1).astype(np.float64), weights)
        out["roc_auc"] = _auc(pos, neg)
        out.update(_screening(pos, neg))
    elif "roc_auc" in metrics:
        aucs = [_class_auc(y, probs, weights, k) for k in range(n_classes)]
        out["roc_auc"] = _nanmean(np.stack(aucs, axis=1))
    return {m: out[m] for m in metrics}


# --------------------------------------------------------------------------- public
def classification_metrics(
    y_true: Any,
    probs: Any,
    threshold: float | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All evaluation metrics of one set of class probabilities (conventions: module docstring).

    Args:
        y_true: integer labels ``(N,)`` in ``[0, C)``.
        probs: class probabilities ``(N, C)``, rows summing to 1, ``C >= 2``.
        threshold: binary only -- predict class 1 when ``probs[:, 1] >= threshold`` (0.5).
        class_names: names of the ``C`` classes for ``per_class`` (default ``"0"``, ``"1"``, ...).

    Returns:
        The :data:`SCALAR_METRICS` (floats; ``npv`` and after only for C == 2), ``threshold``
        and ``n_positive`` (C == 2), ``n``, ``confusion_matrix`` (nested list, rows = true,
        columns = predicted) and ``per_class``: ``{name: {precision, recall, specificity, f1,
        support, roc_auc}}`` (one-vs-rest).
    """
    y, p = _validate_inputs(y_true, probs)
    c = p.shape[1]
    thr = _resolve_threshold(threshold, c)
    names = [str(k) for k in range(c)] if class_names is None else [str(n) for n in class_names]
    if len(names) != c or len(set(names)) != c:
        raise ValueError(f"class_names must be {c} unique names (one per column), got {names}")
    pred = _predict(p, thr)
    ones = np.ones((1, y.size))
    metrics = SCALAR_METRICS if c == 2 else MULTICLASS_METRICS
    scalars = batch_metrics(y, p, pred, ones, metrics)
    out: dict[str, Any] = {k: float(v[0]) for k, v in scalars.items()}
    if c == 2:
        out["threshold"] = thr
    out["n"] = int(y.size)
    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    if c == 2:
        out["n_positive"] = int(cm[1].sum())
    out["confusion_matrix"] = cm.tolist()
    stats = _confusion_stats(cm[None].astype(np.float64))
    out["per_class"] = {
        name: {key: float(stats[key][0, k]) for key in ("precision", "recall", "specificity", "f1")}
        | {"support": int(cm[k].sum()), "roc_auc": float(_class_auc(y, p, ones, k)[0])}
        for k, name in enumerate(names)
    }
    return out


def bootstrap_ci(
    y_true: Any,
    probs: Any,
    metrics: Sequence[str] = (*TABLE_METRICS, "balanced_accuracy"),
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float | None = None,
    groups: Sequence | None = None,
) -> dict[str, dict]:
    """95% percentile bootstrap intervals of scalar metrics (names from :data:`SCALAR_METRICS`).

    Each replicate resamples the ``N`` test cells with replacement (threshold and predictions
    fixed) and recomputes the metrics. With ``groups`` (the slide or patient of each cell) it is
    a *cluster* bootstrap: groups are drawn with replacement, with all their cells. Cells of one
    slide are correlated (staining, patient, scanner), so the cell bootstrap overstates the
    sample size and its interval is too narrow; pass ``groups`` whenever they are known.

    Vectorised: one matrix product gives every replicate's confusion matrix, and AUC and
    screening metrics come from weighted counts per distinct score (1000 replicates of 2000
    cells take about 0.1 s). Replicates where a metric is undefined are dropped for it.

    Returns:
        ``{metric: {"value": on the full set, "low", "high", "n_boot": finite replicates}}``
        (``low`` and ``high`` NaN when no replicate is finite); deterministic given ``seed``.
    """
    y, p = _validate_inputs(y_true, probs)
    thr = _resolve_threshold(threshold, p.shape[1])
    allowed = SCALAR_METRICS if p.shape[1] == 2 else MULTICLASS_METRICS
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names or any(m not in allowed for m in names):
        raise ValueError(f"unknown metric(s) in {list(names)}; choose from {list(allowed)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    n_boot, n_units, group_index = int(n_boot), y.size, None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != y.shape:
            raise ValueError(f"groups must be 1-D, one entry per cell ({y.size}), got {g.shape}")
        uniques, group_index = np.unique(g, return_inverse=True)
        n_units = int(uniques.size)

    point = classification_metrics(y, p, threshold=thr)
    pred = _predict(p, thr)
    rng = np.random.default_rng(seed)
    replicates = {m: np.empty(n_boot) for m in names}
    chunk = max(1, min(n_boot, _MAX_CHUNK_ELEMENTS // max(y.size, n_units)))
    for start in range(0, n_boot, chunk):
        n_rep = min(chunk, n_boot - start)
        # weight of a cell = how often it (or its group) was drawn in the replicate
        draws = rng.integers(0, n_units, size=(n_rep, n_units))
        draws += (np.arange(n_rep) * n_units)[:, None]
        counts = np.bincount(draws.ravel(), minlength=n_rep * n_units).reshape(n_rep, n_units)
        weights = counts.astype(np.float64)
        if group_index is not None:
            weights = weights[:, group_index]
        for m, values in batch_metrics(y, p, pred, weights, names).items():
            replicates[m][start : start + n_rep] = values
    out = {}
    for m in names:
        finite = replicates[m][np.isfinite(replicates[m])]
        low, high = np.quantile(finite, [_ALPHA, 1.0 - _ALPHA]) if finite.size else (np.nan,) * 2
        out[m] = {"value": float(point[m]), "low": float(low), "high": float(high),
                  "n_boot": int(finite.size)}
    return out


def slide_weights(groups: Sequence, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, N) cell weights of a bootstrap over ``groups`` (slides): in each replicate the
    groups are drawn with replacement, and a cell weighs as often as its group was drawn. The
    same ``groups``, ``n_boot`` and ``seed`` give the same draws (paired comparisons)."""
    uniques, index = np.unique(np.asarray(groups), return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, uniques.size, size=(n_boot, uniques.size))
    draws += (np.arange(n_boot) * uniques.size)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * uniques.size)
    return counts.reshape(n_boot, uniques.size).astype(np.float64)[:, index]


def threshold_for_sensitivity(y_true: Any, p_pos: Any, target: float = 0.95) -> float:
    """Largest threshold ``t`` (one of the positive scores) with sensitivity ``>= target`` when
    predicting ``p_pos >= t`` (``y_true`` in {0, 1}, ``p_pos`` the probability of class 1);
    chosen on the selection cells, applied unchanged to the report cells."""
    y, p = _validate_scores(y_true, p_pos)
    if not (0.0 < float(target) <= 1.0):
        raise ValueError(f"target sensitivity must be in (0, 1], got {target!r}")
    pos_scores = np.sort(p[y == 1])[::-1]
    if pos_scores.size == 0:
        raise ValueError("y_true has no positive (class 1) case: sensitivity is undefined")
    recall_at_k = np.arange(1, pos_scores.size + 1) / pos_scores.size
    return float(pos_scores[int(np.argmax(recall_at_k >= float(target)))])


def roc_points(y_true: Any, p_pos: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of ``sklearn.metrics.roc_curve``; ``thresholds[0]`` is inf."""
    y, p = _validate_scores(y_true, p_pos)
    if y.min() == y.max():
        raise ValueError("a ROC curve needs both positive and negative cases in y_true")
    return roc_curve(y, p)


def bootstrap_group_mean(values: Any, groups: Any, n_boot: int = 1000,
                         seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-cell ``values`` from a bootstrap over
    ``groups`` (slides drawn with replacement, with all their cells); NaN, NaN for none."""
    v, g = np.asarray(values, dtype=float), np.asarray(groups)
    if v.shape != g.shape:
        raise ValueError(f"one group per value: {g.shape} groups for {v.shape} values")
    if v.size == 0:
        return float("nan"), float("nan")
    _, index = np.unique(g, return_inverse=True)
    sums = np.bincount(index, weights=v)
    counts = np.bincount(index).astype(float)
    draws = np.random.default_rng(seed).integers(0, sums.size, size=(n_boot, sums.size))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(means, [_ALPHA, 1.0 - _ALPHA])
    return float(low), float(high)
