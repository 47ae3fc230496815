"""Scoring a finished run on a dataset folder it never saw: ``python -m aecnn_utils evaluate``.

This is how a laboratory tests a trained model on its own cells, and how anyone checks a result
on data the kit never saw. The run's own image size, resize mode, normalisation, label scheme,
temperature (calibration, :mod:`aecnn_utils.evaluation.calibration`) and validation threshold are
used; intervals come from a bootstrap over slides.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aecnn_utils.core.device import resolve_device
from aecnn_utils.core.io import atomic_write_json, atomic_write_text
from aecnn_utils.data import taxonomy
from aecnn_utils.data.cache import cache_images
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.evaluation import metrics as M
from aecnn_utils.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    log_probs,
)
from aecnn_utils.models import load_trained_model
from aecnn_utils.training.config import ConfigError
from aecnn_utils.training.published import output_dir
from aecnn_utils.training.runs import checkpoint_probs, load_run, predictions_frame, resolve_run
from aecnn_utils.training.scoring import CI_UNIT, interval_names, seen_mask


def evaluate_run(run: str | Path, dataset: str, root: str | Path, out_dir: str | Path | None = None,
                 *, device: str = "auto", on_error: str = "raise", n_boot: int = 1000,
                 cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Score the best model of a finished run on every cell of ``dataset`` under ``root``.

    Writes ``predictions.csv`` and ``metrics.json`` (probabilities at the run's temperature;
    at 0.5 and at the run's validation threshold, 95% intervals from a bootstrap over
    ``patient_or_slide``; the expected calibration error with and without the temperature;
    binary runs also without the classes no training cell resembles) to ``out_dir`` (default
    ``<run>/evaluate/<dataset>-<hash of root>/``) and returns the metrics.
    """
    run_dir = resolve_run(run)
    dev = resolve_device(device)
    trained = load_run(run_dir)
    config, run_metrics = trained.config, trained.metrics
    model, meta = load_trained_model(trained.best_checkpoint, map_location=dev)
    model = model.to(dev)
    class_names = tuple(meta["class_names"])
    expected = taxonomy.class_names(config.scheme, dataset if config.scheme == "native"
                                    else None)
    if expected != class_names:
        raise ConfigError(f"the run predicts {', '.join(class_names)} (scheme {config.scheme!r}"
                          f" on {'+'.join(config.train)}), but {dataset} under that scheme has "
                          f"{', '.join(expected)}: evaluate a binary or three_tier run")
    kwargs = {"crop_size": config.cric_crop_size} if dataset == "cric" else {}
    frame = scan_dataset(dataset, root, scheme=config.scheme, **kwargs)
    cached = cache_images(frame, int(meta["image_size"]), cache_dir,
                          resize_mode=config.resize_mode, on_error=on_error, progress=progress)
    calibration, temperature = run_metrics.get("calibration") or {}, trained.temperature
    labels, probs = checkpoint_probs(model, meta, cached, dev, temperature=temperature)
    threshold = trained.threshold  # on the calibrated scale: the run's decisions
    cells = cached.frame
    groups, names = cells[CI_UNIT].to_numpy(), interval_names(class_names)
    result: dict[str, Any] = {
        "run": run_dir.name, "dataset": dataset, "root": str(Path(root).resolve()),
        "n_cells": len(cells), "skipped": list(cached.skipped), "ci_unit": CI_UNIT,
        "metrics": M.classification_metrics(labels, probs, class_names=class_names),
        "ci": M.bootstrap_ci(labels, probs, names, n_boot=n_boot, seed=config.seed,
                             groups=groups)}
    if threshold is not None:
        result["threshold"] = {
            "value": threshold, "rule": run_metrics["threshold"]["rule"] + " (the run's)",
            "metrics": M.classification_metrics(labels, probs, threshold=threshold),
            "ci": M.bootstrap_ci(labels, probs, names, n_boot=n_boot, seed=config.seed,
                                 threshold=threshold, groups=groups)}
    if len(set(labels.tolist())) > 1:
        raw = apply_temperature(log_probs(probs), 1 / temperature)  # softmax(logits)
        result["calibration"] = {
            "temperature": temperature, "fitted_on": calibration.get("fitted_on", "none"),
            "ece": expected_calibration_error(labels, raw),
            "ece_calibrated": expected_calibration_error(labels, probs)}
    seen = seen_mask(config, cells)
    if not seen.all() and len(set(labels[seen].tolist())) > 1:
        result["seen"] = {"excluded_classes": sorted(set(cells["source_class"][~seen])),
                          "metrics": M.classification_metrics(labels[seen], probs[seen])}
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    out = Path(out_dir) if out_dir else output_dir(run_dir) / "evaluate" / f"{dataset}-{key}"
    atomic_write_text(out / "predictions.csv",
                      predictions_frame(cells, probs, class_names, threshold).to_csv(index=False))
    atomic_write_json(out / "metrics.json", result)
    result["out_dir"] = str(out)
    return result


def summary_line(result: dict[str, Any]) -> str:
    """One line: cells, AUC with its interval, sensitivity and specificity at the threshold."""
    m, ci = result["metrics"], result["ci"]["roc_auc"]
    text = (f"{result['dataset']}: {result['n_cells']} cells, AUC {m['roc_auc']:.3f} "
            f"[{ci['low']:.3f}, {ci['high']:.3f}] (95% CI over slides)")
    if "threshold" in result:
        t = result["threshold"]["metrics"]
        text += (f"; at the run's threshold {result['threshold']['value']:.3f}: sensitivity "
                 f"{t['sensitivity']:.3f}, specificity {t['specificity']:.3f}")
    if "calibration" in result:
        c = result["calibration"]
        text += (f"; ECE {c['ece_calibrated']:.3f} at the run's temperature "
                 f"{c['temperature']:.2f} ({c['ece']:.3f} without)")
    return text + f" -> {result['out_dir']}"

