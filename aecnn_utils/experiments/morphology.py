"""A reference classifier on hand-crafted nucleus features: what morphology alone transfers.

A cytologist reads the nucleus: its size relative to the cell, its outline, its darkness and the
pattern of its chromatin. :func:`fit_reference` measures those features on every cell
(:func:`aecnn_utils.data.segment.nucleus_features`, none of them depends on the pixel size) and
fits a class-balanced logistic regression on the training cells. Its outputs on the validation
and test cells are scored exactly like a network's (the same splits, repeated splits, threshold
and slide-level intervals), so the CNN has a floor to beat: if it does not beat nucleus
morphology across datasets, it has learned something that does not transfer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from aecnn_utils.core.io import atomic_path, atomic_write_json, atomic_write_text
from aecnn_utils.data.cache import CachedImages
from aecnn_utils.data.segment import NUCLEUS_FEATURES, nucleus_features
from aecnn_utils.training.build import make_loss
from aecnn_utils.training.config import RunConfig
from aecnn_utils.training.engine import EVALUATION_VERSION
from aecnn_utils.training.prepare import PreparedData, prepare_data
from aecnn_utils.training.published import adopt
from aecnn_utils.training.runs import (
    RunResult,
    default_runs_dir,
    load_run,
    note_run,
    run_lock,
    write_predictions,
)
from aecnn_utils.training.scoring import evaluate_outputs

#: The reference's name (run folders, tables).
NAME = "nucleus_features"
#: Features are measured on the cells cached at this size (``pad``), whatever the networks use.
FEATURE_SIZE = 128
#: Version of the features (3: measured with segmentation version 2, padding bars excluded).
FEATURES_VERSION = 3


def feature_matrix(cells: CachedImages, progress: bool = True) -> np.ndarray:
    """``N x len(NUCLEUS_FEATURES)`` features of cached cells, stored beside the cache."""
    path = cells.array_path.with_name(f"{cells.array_path.stem}-features-v{FEATURES_VERSION}.npy")
    if path.is_file():
        return np.load(path)
    images = cells.array()
    rows = [list(nucleus_features(np.asarray(images[i])).values())
            for i in tqdm(range(len(images)), desc="nucleus features", disable=not progress,
                          leave=False)]
    out = np.asarray(rows, dtype=np.float64)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, out)
    return out


def reference_config(config: RunConfig) -> RunConfig:
    """``config`` with the cell preparation the features are measured on."""
    return config.replace(image_size=FEATURE_SIZE, resize_mode="pad", input_mode="rgb",
                          stain_norm="none")


def fit_reference(config: RunConfig, runs_dir: str | Path | None = None, *,
                  data: PreparedData | None = None, progress: bool = True,
                  cache_dir: str | Path | None = None) -> RunResult:
    """Fit the nucleus-feature classifier on ``config``'s training cells and score it on its
    validation and test cells like a run; reuse the folder when it is already there.

    The folder ``<runs_dir>/<profile>/nucleus_features_<...>/`` holds ``config.yaml``,
    ``metrics.json`` (with the standardised coefficients), ``history.csv`` (empty) and the
    predictions, like a network's run.
    """
    config = reference_config(config)
    data = data or prepare_data(config, cache_dir, progress)
    data.check_matches(config)
    run_id = f"{NAME}{FEATURES_VERSION}" + config.run_id(data.fingerprint)[len(config.model):]
    run_dir = Path(runs_dir or default_runs_dir()) / config.profile / run_id
    with run_lock(run_dir):  # one process fits it; another waits and reuses it
        adopt(run_dir, config.profile)  # a published fit this machine has not made
        if (run_dir / "metrics.json").is_file() and (run_dir / "epochs.npz").is_file():
            return note_run(load_run(run_dir))  # a folder of before epochs.npz: fitted again
        x_train = feature_matrix(data.caches["train"], progress)
        y_train = data.frame("train")["label"].to_numpy()
        x_pool = feature_matrix(data.caches["pool"], progress)
        model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced",
                                                                   max_iter=2000))
        model.fit(x_train, y_train)
        probs = model.predict_proba(x_pool)
        outputs = np.log(np.clip(probs, 1e-7, 1.0))[None]  # one "epoch" of log-probabilities
        final = evaluate_outputs(config, data.class_names, data.frame("pool"), outputs, data.index,
                                 make_loss(config, data.train_counts), best_epoch=1)
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.yaml")
        atomic_write_text(run_dir / "history.csv", "epoch\n")
        with atomic_path(run_dir / "epochs.npz") as tmp, tmp.open("wb") as f:
            np.savez(f, logits=outputs.astype(np.float32))  # as a network's run keeps its epochs
        threshold = final.get("threshold", {}).get("value")
        write_predictions(run_dir, data, probs, threshold)
        coef = model[-1].coef_
        metrics = {
            "evaluation_version": EVALUATION_VERSION, "run_id": run_id, "profile": config.profile,
            "model": NAME, "seed": config.seed, "data": data.source.notice,
            "synthetic": data.source.synthetic, "data_fingerprint": data.fingerprint,
            "class_names": list(data.class_names), "train_counts": data.train_counts.tolist(),
            "params": int(coef.size + model[-1].intercept_.size), "device": "cpu",
            "epochs_run": 1, "stopped_early": False, "monitor": config.monitor,
            "train_seconds": 0.0, "resumed_from_epoch": 0, "sizes": data.splits.sizes(),
            "features": list(NUCLEUS_FEATURES),
            "coefficients": {name: [float(c) for c in coef[:, k]]
                             for k, name in enumerate(NUCLEUS_FEATURES)},
            **final,
        }
        atomic_write_json(run_dir / "metrics.json", metrics)
        return note_run(RunResult(run_dir, config, pd.DataFrame(), metrics))
