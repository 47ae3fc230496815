"""Tests of aecnn_utils.evaluation.metrics: metrics vs scikit-learn, bootstrap CIs, thresholds,
reports."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from aecnn_utils.evaluation.metrics import (
    SCALAR_METRICS,
    _predict,
    batch_metrics,
    bootstrap_ci,
    classification_metrics,
    roc_points,
    threshold_for_sensitivity,
)

BINARY_METRICS = SCALAR_METRICS
MULTICLASS_METRICS = SCALAR_METRICS[: SCALAR_METRICS.index("npv")]
SCREENING = ("sens_at_spec90", "sens_at_spec95", "spec_at_sens90", "spec_at_sens95")

# --------------------------------------------------------------------------- data


def _binary(n: int = 300, seed: int = 0, signal: float = 0.3, decimals: int | None = None):
    """Labels and (N, 2) probabilities with some signal; ``decimals`` rounds to create ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(signal * y + rng.normal(0.35, 0.2, n), 0.0, 1.0)
    if decimals is not None:
        p1 = np.round(p1, decimals)
    return y, np.column_stack([1.0 - p1, p1])


def _multiclass(n: int = 400, c: int = 5, seed: int = 0, absent: int | None = None):
    """Labels and softmax probabilities; ``absent`` removes that class from the labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    if absent is not None:
        y[y == absent] = (absent + 1) % c
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.2
    probs = np.exp(logits)
    return y, probs / probs.sum(axis=1, keepdims=True)


def _specificity_by_hand(cm: np.ndarray, k: int) -> float:
    fp = cm[:, k].sum() - cm[k, k]
    tn = cm.sum() - cm[k, :].sum() - fp
    return tn / (tn + fp)


# --------------------------------------------------------------------------- binary vs sklearn


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [None, 0.2, 0.5, 0.65, 0.9])
def test_binary_metrics_match_sklearn(seed: int, threshold: float | None) -> None:
    y, probs = _binary(seed=seed)
    m = classification_metrics(y, probs, threshold=threshold)
    t = 0.5 if threshold is None else threshold
    pred = (probs[:, 1] >= t).astype(int)
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=np.nan
    )
    cm = confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, _ = cm.ravel()

    assert m["threshold"] == t
    assert m["n"] == y.size and m["n_positive"] == int(y.sum())
    assert m["confusion_matrix"] == cm.tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(prec[1], nan_ok=True)
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=np.nan))
    assert m["sensitivity"] == m["recall"]
    assert m["f1"] == pytest.approx(f1[1])
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["npv"] == pytest.approx(tn / (tn + fn))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-12)
    for k, name in enumerate(["0", "1"]):
        pc = m["per_class"][name]
        assert pc["precision"] == pytest.approx(prec[k], nan_ok=True)
        assert pc["recall"] == pytest.approx(rec[k])
        assert pc["f1"] == pytest.approx(f1[k])
        assert pc["support"] == sup[k]
        assert pc["specificity"] == pytest.approx(_specificity_by_hand(cm, k))
        assert pc["roc_auc"] == pytest.approx(roc_auc_score(y == k, probs[:, k]), abs=1e-12)


def test_binary_class_names_and_types() -> None:
    y, probs = _binary()
    m = classification_metrics(y, probs, class_names=["normal", "abnormal"])
    assert list(m["per_class"]) == ["normal", "abnormal"]
    assert m["per_class"]["abnormal"]["recall"] == m["recall"]
    for key in BINARY_METRICS:
        assert isinstance(m[key], float)
    assert isinstance(m["confusion_matrix"][0][0], int)


# --------------------------------------------------------------------------- multi-class vs sklearn


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("c", [3, 5, 7])
def test_multiclass_metrics_match_sklearn(seed: int, c: int) -> None:
    y, probs = _multiclass(c=c, seed=seed)
    labels = list(range(c))
    m = classification_metrics(y, probs)
    pred = probs.argmax(axis=1)
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=np.nan
    )
    macro = precision_recall_fscore_support(
        y, pred, labels=labels, average="macro", zero_division=np.nan
    )
    cm = confusion_matrix(y, pred, labels=labels)

    assert m["confusion_matrix"] == cm.tolist()
    assert m["n"] == y.size
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(macro[0])
    assert m["recall"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["sensitivity"] == m["recall"]
    assert m["f1"] == pytest.approx(macro[2])
    spec = [_specificity_by_hand(cm, k) for k in labels]
    assert m["specificity"] == pytest.approx(np.mean(spec))
    auc = roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels)
    assert m["roc_auc"] == pytest.approx(auc, abs=1e-12)
    for k in labels:
        pc = m["per_class"][str(k)]
        assert pc["precision"] == pytest.approx(prec[k])
        assert pc["recall"] == pytest.approx(rec[k])
        assert pc["f1"] == pytest.approx(f1[k])
        assert pc["support"] == sup[k]
        assert pc["specificity"] == pytest.approx(spec[k])
        assert pc["roc_auc"] == pytest.approx(roc_auc_score(y == k, probs[:, k]), abs=1e-12)


def test_multiclass_absent_class() -> None:
    c, absent = 5, 2
    y, probs = _multiclass(c=c, absent=absent, seed=3)
    assert absent not in y
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, probs)
    pred = probs.argmax(axis=1)
    labels = list(range(c))
    cm = confusion_matrix(y, pred, labels=labels)
    assert len(m["confusion_matrix"]) == c and m["confusion_matrix"] == cm.tolist()
    assert m["confusion_matrix"][absent] == [0] * c
    pc = m["per_class"][str(absent)]
    assert pc["support"] == 0
    assert math.isnan(pc["recall"]) and math.isnan(pc["roc_auc"])
    macro = precision_recall_fscore_support(
        y, pred, labels=labels, average="macro", zero_division=np.nan
    )
    assert m["precision"] == pytest.approx(macro[0])
    assert m["recall"] == pytest.approx(macro[1])
    assert m["f1"] == pytest.approx(macro[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the class absent from y_true
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    present = [k for k in labels if k != absent]
    expected_auc = np.mean([roc_auc_score(y == k, probs[:, k]) for k in present])
    assert m["roc_auc"] == pytest.approx(expected_auc)


# --------------------------------------------------------------------------- edge cases


def test_single_class_auc_is_nan_without_warnings() -> None:
    y = np.ones(10, dtype=int)
    p1 = np.linspace(0.1, 0.9, 10)
    probs = np.column_stack([1 - p1, p1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, probs)
        ci = bootstrap_ci(y, probs, n_boot=50)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["specificity"])
    assert m["recall"] == pytest.approx(np.mean(p1 >= 0.5))
    assert ci["roc_auc"]["n_boot"] == 0 and math.isnan(ci["roc_auc"]["low"])


def test_no_positive_predictions_precision_nan() -> None:
    y = np.array([0, 1, 0, 1, 1])
    probs = np.column_stack([np.full(5, 0.9), np.full(5, 0.1)])
    m = classification_metrics(y, probs)
    assert math.isnan(m["precision"])
    assert m["recall"] == 0.0 and m["f1"] == 0.0 and m["specificity"] == 1.0
    assert m["roc_auc"] == 0.5  # all scores tied


def test_perfect_classifier() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    probs = np.eye(2)[y]
    m = classification_metrics(y, probs)
    for key in BINARY_METRICS:
        assert m[key] == (0.5 if key == "prevalence" else 1.0), key
    ym = np.array([0, 1, 2, 3, 2, 1, 0])
    mm = classification_metrics(ym, np.eye(4)[ym])
    for key in MULTICLASS_METRICS:
        assert mm[key] == 1.0, key


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("y", "probs", "kwargs", "message"),
    [
        ([0, 1], [[0.5, 0.6], [0.5, 0.5]], {}, "sum to 1"),
        ([0, 1], [[1.2, -0.2], [0.5, 0.5]], {}, r"\[0, 1\]"),
        ([0, 1], [[np.nan, 1.0], [0.5, 0.5]], {}, "NaN"),
        ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], {}, "disagree on N"),
        ([[0, 1]], [[0.5, 0.5], [0.5, 0.5]], {}, "1-D"),
        ([0, 1], [0.5, 0.5], {}, "2-D"),
        ([0, 1], [[1.0], [1.0]], {}, "C >= 2"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], {}, "outside"),
        ([0, -1], [[0.5, 0.5], [0.5, 0.5]], {}, "outside"),
        ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]], {}, "integer"),
        ([], np.zeros((0, 2)), {}, "empty"),
        ([0, 1, 2], np.full((3, 3), 1 / 3), {"threshold": 0.5}, "binary"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"threshold": 1.5}, "threshold"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], {"class_names": ["a"]}, "class_names"),
    ],
)
def test_bad_inputs_raise(y, probs, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(np.asarray(y), np.asarray(probs), **kwargs)


def test_bootstrap_bad_arguments() -> None:
    y, probs = _binary(n=50)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, probs, metrics=("accuracy", "auroc"))
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(*_multiclass(n=30, c=3), metrics=("npv",))
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(*_multiclass(n=30, c=3), metrics=("sens_at_spec90",))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(y, probs, n_boot=0)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(y, probs, groups=np.arange(10))
    with pytest.raises(ValueError, match="binary"):
        bootstrap_ci(*_multiclass(n=30, c=3), threshold=0.3)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_point_estimate() -> None:
    y, probs = _binary(n=500, seed=4)
    ci = bootstrap_ci(y, probs, metrics=BINARY_METRICS, n_boot=500, seed=1)
    point = classification_metrics(y, probs)
    assert set(ci) == set(BINARY_METRICS)
    for name, entry in ci.items():
        assert entry["value"] == point[name]
        assert entry["low"] <= entry["value"] <= entry["high"], name
        assert entry["n_boot"] == 500
    ym, pm = _multiclass(n=500, c=5, seed=4)
    cim = bootstrap_ci(ym, pm, metrics=MULTICLASS_METRICS, n_boot=300)
    for name, entry in cim.items():
        assert entry["low"] <= entry["value"] <= entry["high"], name


def test_bootstrap_width_shrinks_with_n() -> None:
    small = bootstrap_ci(*_binary(n=100, seed=5), n_boot=500)
    large = bootstrap_ci(*_binary(n=2000, seed=5), n_boot=500)
    for name in small:
        width_small = small[name]["high"] - small[name]["low"]
        width_large = large[name]["high"] - large[name]["low"]
        assert width_large < width_small, name


def test_bootstrap_deterministic_with_seed() -> None:
    y, probs = _binary(n=200, seed=6)
    a = bootstrap_ci(y, probs, n_boot=200, seed=7)
    b = bootstrap_ci(y, probs, n_boot=200, seed=7)
    c = bootstrap_ci(y, probs, n_boot=200, seed=8)
    assert a == b
    assert a != c
    assert any(a[m]["low"] != c[m]["low"] or a[m]["high"] != c[m]["high"] for m in a)


@pytest.mark.parametrize("decimals", [None, 1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_auc_matches_sklearn_with_ties(decimals: int | None, seed: int) -> None:
    y, probs = _binary(n=400, seed=seed, decimals=decimals)
    if decimals is not None:
        assert np.unique(probs[:, 1]).size < y.size  # ties present
    ones = np.ones((1, y.size))
    pred = _predict(probs, 0.5)
    auc = batch_metrics(y, probs, pred, ones, ("roc_auc",))["roc_auc"][0]
    assert auc == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-12)
    assert bootstrap_ci(y, probs, n_boot=10)["roc_auc"]["value"] == pytest.approx(auc)


@pytest.mark.parametrize("kind", ["binary", "binary_small", "multiclass"])
def test_batch_replicates_equal_classification_metrics_on_resample(kind: str) -> None:
    """Each vectorised replicate equals classification_metrics on the resampled cells."""
    if kind == "multiclass":
        y, probs = _multiclass(n=150)
    elif kind == "binary":
        y, probs = _binary(n=150, seed=2, decimals=2)
    else:  # ties, replicates without positives or negatives, FPR/TPR at the 0.05/0.1 bounds
        y, probs = _binary(n=12, seed=2, decimals=1)
    threshold = None if kind == "multiclass" else 0.4
    names = MULTICLASS_METRICS if kind == "multiclass" else BINARY_METRICS
    rng = np.random.default_rng(0)
    idx = rng.integers(0, y.size, size=(5 if kind != "binary_small" else 40, y.size))
    weights = np.stack([np.bincount(row, minlength=y.size) for row in idx]).astype(float)
    batch = batch_metrics(y, probs, _predict(probs, threshold), weights, names)
    for b, row in enumerate(idx):
        ref = classification_metrics(y[row], probs[row], threshold=threshold)
        for name in names:
            assert batch[name][b] == pytest.approx(ref[name], nan_ok=True), (b, name)


def test_cluster_bootstrap_wider_for_correlated_cells() -> None:
    """Cells of one group are identical: the cell bootstrap overstates the sample size."""
    rng = np.random.default_rng(9)
    n_groups, per_group = 30, 40
    group_y = rng.integers(0, 2, n_groups)
    group_p = np.clip(0.25 * group_y + rng.uniform(0.2, 0.6, n_groups), 0, 1)
    y = np.repeat(group_y, per_group)
    p1 = np.repeat(group_p, per_group)
    probs = np.column_stack([1 - p1, p1])
    groups = np.repeat([f"slide{g:02d}" for g in range(n_groups)], per_group)
    cell = bootstrap_ci(y, probs, n_boot=500, seed=0)
    cluster = bootstrap_ci(y, probs, n_boot=500, seed=0, groups=groups)
    for name in cell:
        assert cluster[name]["value"] == cell[name]["value"]
        width_cell = cell[name]["high"] - cell[name]["low"]
        width_cluster = cluster[name]["high"] - cluster[name]["low"]
        assert width_cluster >= width_cell, name
    assert cluster["accuracy"]["high"] - cluster["accuracy"]["low"] > 2 * (
        cell["accuracy"]["high"] - cell["accuracy"]["low"]
    )


def test_cluster_bootstrap_of_singletons_matches_cell_bootstrap() -> None:
    y, probs = _binary(n=120, seed=3)
    cell = bootstrap_ci(y, probs, n_boot=100, seed=2)
    singletons = bootstrap_ci(y, probs, n_boot=100, seed=2, groups=np.arange(y.size))
    assert cell == singletons


def test_bootstrap_drops_undefined_replicates() -> None:
    y = np.zeros(20, dtype=int)
    y[0] = 1  # one positive: many replicates contain no positive cell
    p1 = np.linspace(0.05, 0.95, 20)
    probs = np.column_stack([1 - p1, p1])
    ci = bootstrap_ci(y, probs, metrics=("roc_auc", "recall", "accuracy"), n_boot=400)
    assert 0 < ci["roc_auc"]["n_boot"] < 400
    assert ci["roc_auc"]["n_boot"] == ci["recall"]["n_boot"]
    assert ci["accuracy"]["n_boot"] == 400


def test_bootstrap_is_fast() -> None:
    y, probs = _binary(n=2000, seed=0)
    bootstrap_ci(y, probs, n_boot=20)  # warm-up
    start = time.perf_counter()
    ci = bootstrap_ci(y, probs, n_boot=1000)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"bootstrap took {elapsed:.2f} s"
    assert all(entry["n_boot"] == 1000 for entry in ci.values())


# --------------------------------------------------------------------------- screening metrics


def _screening_sklearn(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """The definitions, on the ROC points of sklearn (every distinct score, plus (0, 0))."""
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    return {
        "sens_at_spec90": tpr[fpr <= 0.10].max(),
        "sens_at_spec95": tpr[fpr <= 0.05].max(),
        "spec_at_sens90": (1.0 - fpr[tpr >= 0.90]).max(),
        "spec_at_sens95": (1.0 - fpr[tpr >= 0.95]).max(),
    }


def _screening_brute_force(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Best sensitivity (specificity) of any rule ``score >= t`` meeting the other constraint."""
    sens, spec = [], []
    for t in [np.inf, *np.unique(score)]:
        pred = score >= t
        sens.append(np.mean(pred[y == 1]))
        spec.append(np.mean(~pred[y == 0]))
    sens, spec = np.array(sens), np.array(spec)
    return {
        "sens_at_spec90": sens[spec >= 0.90].max(),
        "sens_at_spec95": sens[spec >= 0.95].max(),
        "spec_at_sens90": spec[sens >= 0.90].max(),
        "spec_at_sens95": spec[sens >= 0.95].max(),
    }


@pytest.mark.parametrize("decimals", [None, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screening_metrics_match_sklearn_roc(decimals: int | None, seed: int) -> None:
    y, probs = _binary(n=500, seed=seed, decimals=decimals)
    m = classification_metrics(y, probs)
    assert m["prevalence"] == m["n_positive"] / m["n"]
    for ref in (_screening_sklearn(y, probs[:, 1]), _screening_brute_force(y, probs[:, 1])):
        for name in SCREENING:
            assert m[name] == pytest.approx(ref[name], abs=1e-12), name
    assert 0.0 < m["sens_at_spec95"] <= m["sens_at_spec90"] < 1.0
    assert 0.0 < m["spec_at_sens95"] <= m["spec_at_sens90"] < 1.0
    for threshold in (0.1, 0.9):  # independent of the decision threshold
        other = classification_metrics(y, probs, threshold=threshold)
        assert all(other[name] == m[name] for name in (*SCREENING, "prevalence"))


def test_screening_metrics_small_sets_match_sklearn_roc() -> None:
    """Tiny sets with heavy ties: the constraint is often met only by a trivial threshold."""
    rng = np.random.default_rng(21)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(2, 25))
        y = rng.integers(0, 2, n)
        p1 = np.round(np.clip(0.2 * y + rng.uniform(0.0, 0.8, n), 0, 1), 1)
        m = classification_metrics(y, np.column_stack([1 - p1, p1]))
        if y.min() == y.max():
            assert all(math.isnan(m[name]) for name in SCREENING)
            continue
        checked += 1
        for ref in (_screening_sklearn(y, p1), _screening_brute_force(y, p1)):
            for name in SCREENING:
                assert m[name] == pytest.approx(ref[name], abs=1e-12), (y, p1, name)
    assert checked > 250


def _screening_of(y: list[int], p1: list[float]) -> dict[str, float]:
    p = np.asarray(p1, dtype=float)
    m = classification_metrics(np.asarray(y), np.column_stack([1 - p, p]))
    return {name: m[name] for name in (*SCREENING, "prevalence")}


def test_screening_metrics_edge_cases() -> None:
    neg, pos = [0] * 10, [1] * 10
    # one negative above all positives: FPR 0.1 meets spec >= 0.90 but not spec >= 0.95
    m = _screening_of(neg + pos, [0.99] + [0.1] * 9 + [0.8] * 10)
    assert m["sens_at_spec90"] == 1.0 and m["sens_at_spec95"] == 0.0
    assert m["spec_at_sens95"] == pytest.approx(0.9) and m["prevalence"] == 0.5
    # 20 negatives: one above the positives is FPR 0.05, enough for spec >= 0.95
    m = _screening_of([0] * 20 + pos, [0.99] + [0.1] * 19 + [0.8] * 10)
    assert m["sens_at_spec95"] == 1.0 and m["spec_at_sens90"] == pytest.approx(0.95)
    # a positive tied with a negative at the top: no threshold separates them
    m = _screening_of(neg + pos, [0.9] + [0.1] * 9 + [0.9] + [0.5] * 9)
    assert m["sens_at_spec95"] == 0.0 and m["sens_at_spec90"] == 1.0
    # nine positives on top, one below every negative: TPR 0.9 exactly, 0.95 needs all
    m = _screening_of(neg + pos, [0.3] * 10 + [0.9] * 9 + [0.05])
    assert m["spec_at_sens90"] == 1.0 and m["spec_at_sens95"] == 0.0
    assert m["sens_at_spec95"] == pytest.approx(0.9)
    # all scores tied: only the trivial points (0, 0) and (1, 1)
    m = _screening_of(neg + pos, [0.5] * 20)
    assert all(m[name] == 0.0 for name in SCREENING)
    # perfect separation
    m = _screening_of(neg + pos, [0.2] * 10 + [0.7] * 10)
    assert all(m[name] == 1.0 for name in SCREENING)
    # a single class: undefined, without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for labels, prevalence in ((neg, 0.0), (pos, 1.0)):
            m = _screening_of(labels, np.linspace(0, 1, 10).tolist())
            assert all(math.isnan(m[name]) for name in SCREENING)
            assert m["prevalence"] == prevalence
    multi = classification_metrics(*_multiclass(n=30, c=3))
    assert not {"prevalence", "npv", *SCREENING} & set(multi)


def test_bootstrap_screening_metrics_with_and_without_groups() -> None:
    y, probs = _binary(n=400, seed=8, decimals=2)
    names = ("prevalence", *SCREENING, "roc_auc")
    point = classification_metrics(y, probs)
    cell = bootstrap_ci(y, probs, metrics=names, n_boot=300, seed=0)
    cluster = bootstrap_ci(y, probs, metrics=names, n_boot=300, seed=0, groups=np.arange(400) // 20)
    for ci in (cell, cluster):
        assert list(ci) == list(names)
        for name, entry in ci.items():
            assert entry["value"] == point[name]
            assert 0.0 <= entry["low"] <= entry["high"] <= 1.0, name
            assert entry["n_boot"] == 300
    assert cell["prevalence"]["low"] < point["prevalence"] < cell["prevalence"]["high"]
    alone = bootstrap_ci(y, probs, metrics=("sens_at_spec90",), n_boot=300, seed=0)
    assert alone["sens_at_spec90"] == cell["sens_at_spec90"]


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("decimals", [None, 1])
def test_threshold_for_sensitivity(target: float, decimals: int | None) -> None:
    y, probs = _binary(n=300, seed=11, decimals=decimals)
    p = probs[:, 1]
    t = threshold_for_sensitivity(y, p, target=target)

    def sensitivity(thr: float) -> float:
        return float(np.sum((p >= thr) & (y == 1)) / np.sum(y == 1))

    assert sensitivity(t) >= target
    assert sensitivity(np.nextafter(t, np.inf)) < target
    for higher in np.unique(p[p > t]):
        assert sensitivity(higher) < target


def test_threshold_for_sensitivity_errors() -> None:
    with pytest.raises(ValueError, match="no positive"):
        threshold_for_sensitivity([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="target"):
        threshold_for_sensitivity([0, 1], [0.1, 0.2], target=0.0)
    with pytest.raises(ValueError, match="outside"):
        threshold_for_sensitivity([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold_for_sensitivity([0, 1], [0.1, 1.2])


def test_roc_points_matches_sklearn() -> None:
    y, probs = _binary(n=200, seed=12)
    fpr, tpr, thr = roc_points(y, probs[:, 1])
    ref = roc_curve(y, probs[:, 1])
    for got, want in zip((fpr, tpr, thr), ref, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="both"):
        roc_points([0, 0], [0.1, 0.2])
