"""Calibration: are the model's probabilities risks? Reliability, ECE and temperature scaling.

A screening tool's "P(abnormal) = 0.8" is read as "eight such cells in ten are abnormal". A
network trained with a weighted or focal loss is not built to mean that (both losses move the
probabilities on purpose), and a domain shift moves them further.

* **Reliability** (:func:`reliability_bins`): the cells binned by predicted probability (10
  equal-width bins), each bin's mean probability against the share of its cells that are
  positive. Binary runs bin ``P(abnormal)``, the number a screener reads; multi-class runs bin
  the top class's probability against the share predicted correctly (Guo et al., 2017).
* **Expected calibration error** (:func:`expected_calibration_error`): the bins' gaps
  ``|mean probability - observed share|`` averaged with the bins' cell counts as weights.
* **Temperature scaling** (:func:`fit_temperature`, Guo et al., 2017): one scalar ``T > 0``
  divides the logits, ``p = softmax(z / T)``, fitted by minimising the negative log-likelihood
  on the *validation* (selection) cells and applied unchanged to the test cells. It changes no
  ranking (AUC is unchanged) and no decision at 0.5 in a binary run; a probability threshold
  moves with it (:func:`scale_threshold`) so that the decisions stay the same.

Log-probabilities are enough where logits are not stored: ``softmax`` ignores a shift, so
``softmax(log p / T) = softmax(z / T)`` (:func:`log_probs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

#: Bins of the reliability diagram and the ECE.
N_BINS = 10
#: The temperatures :func:`fit_temperature` searches (a bounded search over log T).
T_RANGE: tuple[float, float] = (0.05, 20.0)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Logits up to a shift per row, from class probabilities (clipped away from 0)."""
    return np.log(np.clip(np.asarray(probs, dtype=float), 1e-12, 1.0))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities ``softmax(logits / temperature)`` (``N x C``)."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature} is not valid: it must be > 0")
    return softmax(np.asarray(logits, dtype=float) / temperature, axis=1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = log_softmax(np.asarray(logits, dtype=float) / temperature, axis=1)
    return float(-z[np.arange(len(labels)), np.asarray(labels, dtype=int)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` (validation cells), in
    :data:`T_RANGE`. Needs both classes, or at least two distinct labels."""
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0 or len(set(labels.tolist())) < 2:
        raise ValueError("fitting a temperature needs validation cells of at least two classes")
    lo, hi = np.log(T_RANGE)
    result = minimize_scalar(lambda s: nll(logits, labels, float(np.exp(s))), bounds=(lo, hi),
                             method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def scale_threshold(threshold: float, temperature: float) -> float:
    """A binary run's threshold on ``P(positive)`` moved to the temperature-scaled
    probabilities, so that ``p >= threshold`` decides every cell as before:
    ``sigmoid(logit(threshold) / T)``."""
    t = float(np.clip(threshold, 1e-12, 1 - 1e-12))
    return float(1.0 / (1.0 + np.exp(-np.log(t / (1 - t)) / temperature)))


def _binned(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probability each cell's bin is built on and whether that "came true"."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be N x C for N={len(labels)} labels, got {probs.shape}")
    if probs.shape[1] == 2:
        return probs[:, 1], (labels == 1).astype(float)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS
                     ) -> pd.DataFrame:
    """One row per non-empty bin: ``low``, ``high``, ``n``, ``mean_prob`` (the bin's mean
    predicted probability), ``observed`` (share positive; multi-class: share correct) and
    ``gap`` (observed minus predicted)."""
    p, hit = _binned(labels, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
    rows = [{"low": edges[b], "high": edges[b + 1], "n": int((which == b).sum()),
             "mean_prob": float(p[which == b].mean()), "observed": float(hit[which == b].mean())}
            for b in range(n_bins) if (which == b).any()]
    table = pd.DataFrame(rows, columns=["low", "high", "n", "mean_prob", "observed"])
    table["gap"] = table["observed"] - table["mean_prob"]
    return table


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray,
                               n_bins: int = N_BINS) -> float:
    """ECE: the bins' ``|observed - mean probability|`` weighted by their share of cells."""
    bins = reliability_bins(labels, probs, n_bins)
    return float((bins["gap"].abs() * bins["n"]).sum() / bins["n"].sum())


def brier(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared distance between the probabilities and the one-hot labels."""
    probs = np.asarray(probs, dtype=float)
    onehot = np.eye(probs.shape[1])[np.asarray(labels, dtype=int)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def calibration_scores(val_logits: np.ndarray, val_labels: np.ndarray,
                       test_logits: np.ndarray, test_labels: np.ndarray,
                       threshold: float | None = None) -> dict[str, Any]:
    """Fit the temperature on the validation cells and score the test cells before and after:
    ``temperature``, ``ece``/``nll``/``brier`` and their ``_calibrated`` values, and (binary,
    given the run's ``threshold``) ``threshold_calibrated``, the same decisions' threshold."""
    t = fit_temperature(val_logits, val_labels)
    before, after = apply_temperature(test_logits, 1.0), apply_temperature(test_logits, t)
    out: dict[str, Any] = {"temperature": t, "fitted_on": "validation (selection) cells, NLL"}
    for name, score in (("ece", expected_calibration_error), ("brier", brier)):
        out[name], out[f"{name}_calibrated"] = score(test_labels, before), score(test_labels,
                                                                                 after)
    out["nll"], out["nll_calibrated"] = nll(test_logits, test_labels), nll(test_logits,
                                                                           test_labels, t)
    if threshold is not None:
        out["threshold_calibrated"] = scale_threshold(threshold, t)
    return out



def reliability(labels: np.ndarray, logits: np.ndarray, temperature: float,
                n_bins: int = N_BINS) -> dict[str, Any]:
    """Reliability of ``logits`` (or log-probabilities) as trained and at ``temperature``:
    ``temperature``, ``binary``, ``before`` and ``after`` (:func:`reliability_bins`), and
    ``ece_before`` and ``ece_after``."""
    before, after = apply_temperature(logits, 1.0), apply_temperature(logits, temperature)
    return {"temperature": float(temperature), "binary": before.shape[1] == 2,
            "before": reliability_bins(labels, before, n_bins),
            "after": reliability_bins(labels, after, n_bins),
            "ece_before": expected_calibration_error(labels, before, n_bins),
            "ece_after": expected_calibration_error(labels, after, n_bins)}
