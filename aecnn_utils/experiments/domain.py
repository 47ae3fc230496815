"""Domain shift seen by a trained model: its penultimate features on cells of several datasets.

:func:`penultimate_features` reads the input of the model's last linear layer (what the
classifier sees); :func:`embed_2d` projects them to two dimensions for a figure coloured by
dataset and label; :func:`domain_separability` says, as one number, how easily the datasets
are told apart in that space (cross-validated AUC of a linear probe: 0.5 means the model
represents both datasets alike, 1.0 that it keeps them apart).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from aecnn_utils.core.device import resolve_device
from aecnn_utils.training.runs import RunResult


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer to read features from")
    return linears[-1]


@torch.no_grad()
def penultimate_features(model: nn.Module, loader: torch.utils.data.DataLoader,
                         device: torch.device | str = "cpu") -> np.ndarray:
    """``N x D`` inputs of ``model``'s last linear layer over ``loader`` (eval mode)."""
    captured: list[np.ndarray] = []
    hook = _last_linear(model).register_forward_hook(
        lambda _m, inputs, _out: captured.append(inputs[0].float().cpu().numpy()))
    try:
        model.eval()
        for x, _ in loader:
            model(x.to(device))
    finally:
        hook.remove()
    return np.concatenate(captured)


def embed_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """``N x 2`` PCA projection of standardised features."""
    scaled = StandardScaler().fit_transform(features)
    return PCA(n_components=2, random_state=seed).fit_transform(scaled)


def domain_separability(features: np.ndarray, datasets: np.ndarray, groups: np.ndarray,
                        n_splits: int = 5) -> float:
    """Cross-validated AUC of a linear probe telling two datasets apart from ``features``.

    Folds keep each slide/cluster (``groups``, within its dataset) whole. Needs exactly two
    datasets.
    """
    names = np.unique(datasets)
    if len(names) != 2:
        raise ValueError(f"domain separability compares two datasets, got {list(names)}")
    y = (datasets == names[1]).astype(int)
    groups = np.char.add(np.asarray(datasets, str), np.asarray(groups, str))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = GroupKFold(n_splits=min(n_splits, len(np.unique(groups))))
    scores = cross_val_predict(probe, features, y, groups=groups, cv=folds,
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def run_features(run: RunResult, rows: dict[str, np.ndarray],
                 device: torch.device | str = "cpu") -> np.ndarray:
    """Penultimate features of a finished run's best checkpoint on chosen cells: ``rows``
    maps ``train``/``pool`` to row numbers of the run's cached cells, prepared the way the run
    prepares them (its image size, scale mode, stain, input mode and normalisation).

    Returns the features of ``rows["train"]`` then ``rows["pool"]`` (in ``rows``' order).
    """
    from aecnn_utils.data.loaders import CellDataset, make_loader
    from aecnn_utils.data.transforms import InputPrep, NormStats, build_eval_transform
    from aecnn_utils.models import load_trained_model
    from aecnn_utils.training.prepare import prepare_data

    device = resolve_device(str(device))
    model, meta = load_trained_model(run.best_checkpoint, map_location=device)
    data = prepare_data(run.config, progress=False)
    transform = build_eval_transform(int(meta["image_size"]), NormStats.from_dict(meta["norm"]),
                                     InputPrep.from_dict(meta.get("input")).mode_only)
    parts = []
    for part, index in rows.items():
        subset = torch.utils.data.Subset(CellDataset(data.caches[part], transform),
                                         np.asarray(index).tolist())
        parts.append(penultimate_features(model.to(device),
                                          make_loader(subset, 128, shuffle=False), device))
    return np.concatenate(parts)
