"""The same tuning budget for every model: a learning-rate grid, chosen on the selection halves.

``python -m aecnn_utils tune --profile cpu`` trains each model once per learning rate of the
profile's grid (``TUNE_LRS``). A run's score is its monitor (e.g. validation AUC) on each
split's *selection* half at the epoch chosen there, averaged over the ``n_splits`` splits; the
report halves are never looked at. The best learning rate per model, with the grid and the
scores that chose it, is written to ``aecnn_utils/profiles/<profile>_tuned.yaml``, which
:func:`aecnn_utils.config.profile_config` reads: ``make reproduce`` then trains (or reuses) the
chosen runs without tuning again.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .config import MONITORS, ConfigError, profile_config, update_tuned
from .data.prepare import data_key, prepare_data
from .train import TrainingDiverged, train_run

#: Learning-rate grid of each profile (log-spaced, 16x range).
TUNE_LRS: dict[str, tuple[float, ...]] = {"smoke": (0.01, 0.05), "cpu": (0.005, 0.02, 0.08),
                                          "paper": (3e-4, 1e-3, 3e-3)}

#: What the profile's file records for a learning rate whose run diverged (loss NaN/inf).
DIVERGED = "diverged"


def selection_score(metrics: dict[str, Any]) -> float:
    """A run's monitor on the selection half(s) at the chosen epoch (mean over splits)."""
    if "splits" in metrics:
        return float(metrics["splits"]["selection_value"]["mean"])
    return float(metrics["selection_value"])


def tune(profile: str, models: Sequence[str], lrs: Sequence[float] | None = None,
         runs_dir: str | Path | None = None, progress: bool = True, write: bool = True,
         **overrides: Any) -> pd.DataFrame:
    """Train every (model, learning rate) of the grid; record the best rate per model.

    Returns one row per run: model, lr, score, chosen, run id, the device it trained on. A
    rate whose run diverges (loss NaN/inf) scores NaN and is recorded as :data:`DIVERGED`.
    ``write`` records the choices in ``<profile>_tuned.yaml`` (merged with the models tuned
    before).
    """
    lrs = tuple(lrs or TUNE_LRS.get(profile, ()))
    if len(lrs) < 2:
        raise ConfigError(f"tuning needs a grid of at least 2 learning rates, got {lrs}")
    rows, data = [], None
    for model in models:
        for lr in lrs:
            config = profile_config(profile, model=model, lr=lr, **overrides)
            if data is None or data.key != data_key(config):
                data = prepare_data(config, progress=progress)
            row = {"model": model, "lr": lr, "score": math.nan, "monitor": config.monitor,
                   "run_id": config.run_id(data.fingerprint), "data": data.source.notice,
                   "device": None}
            try:
                result = train_run(config, runs_dir, data=data, progress=progress)
                row.update(score=selection_score(result.metrics),
                           device=result.metrics["device"])
            except TrainingDiverged as exc:  # a rate too high for this model is a grid result
                warnings.warn(f"{model} at lr {lr} diverged and scores nothing: {exc}",
                              stacklevel=2)
            rows.append(row)
    table = pd.DataFrame(rows)
    mode = MONITORS[profile_config(profile, **overrides).monitor]
    table["chosen"] = False
    for model, group in table.groupby("model", sort=False):
        scores = group["score"].where(group["score"].map(math.isfinite))
        if scores.isna().all():
            raise TrainingDiverged(f"every learning rate of the grid diverged for {model} "
                                   f"({', '.join(map(str, group['lr']))}); try lower rates "
                                   "(--lrs) or amp=False")
        best = scores.idxmin() if mode == "min" else scores.idxmax()
        table.loc[best, "chosen"] = True
    if write:
        record(profile, table)
    return table


def record(profile: str, table: pd.DataFrame) -> Path:
    """Merge the chosen learning rates of ``table`` into ``<profile>_tuned.yaml``."""
    entries = {}
    for model, group in table.groupby("model", sort=False):
        chosen = group[group["chosen"]].iloc[0]
        entries[model] = {
            "lr": float(chosen["lr"]),
            "why": f"best mean {chosen['monitor']} on the selection halves of the splits "
                   f"({'lowest' if MONITORS[chosen['monitor']] == 'min' else 'highest'} wins); "
                   "the report halves are not looked at",
            "grid": {float(r.lr): round(float(r.score), 6) if math.isfinite(r.score)
                     else DIVERGED for r in group.itertuples()},
            "data": str(chosen["data"]), "run_id": str(chosen["run_id"]),
            "device": {float(r.lr): r.device for r in group.itertuples()
                       if isinstance(r.device, str)}}
    return update_tuned(profile, entries)
