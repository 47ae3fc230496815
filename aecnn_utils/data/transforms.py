"""Albumentations pipelines of the paper's section 4 and per-dataset normalisation.

Section 4: images are resized to 224x224 and normalised with dataset-specific mean and standard
deviation; during training, random horizontal/vertical flips, Gaussian noise, CLAHE and elastic
deformation are applied "probabilistically". The paper gives no probabilities or strengths: the
defaults of :class:`AugmentConfig` are ours, and every run saves them with its config.

Cached images (:mod:`aecnn_utils.data.cache`) already have the target size, so the pipelines
resize only when an image of another size comes in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from ..io import atomic_write_json


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and strengths of the training augmentations (section 4).

    Attributes:
        p_hflip, p_vflip: probability of a horizontal / vertical flip (cells have no orientation).
        p_noise: probability of additive Gaussian noise; ``noise_std`` its standard deviation
            range as a fraction of the 0..255 range.
        p_clahe: probability of CLAHE (contrast-limited adaptive histogram equalisation);
            ``clahe_clip`` its clip limit.
        p_elastic: probability of an elastic deformation; ``elastic_alpha``/``elastic_sigma``
            its displacement scale and smoothness in pixels at 224 px (scaled with image size).
    """

    p_hflip: float = 0.5
    p_vflip: float = 0.5
    p_noise: float = 0.2
    noise_std: tuple[float, float] = (0.01, 0.05)
    p_clahe: float = 0.2
    clahe_clip: float = 2.0
    p_elastic: float = 0.2
    elastic_alpha: float = 120.0
    elastic_sigma: float = 6.0

    def __post_init__(self) -> None:
        for name in ("p_hflip", "p_vflip", "p_noise", "p_clahe", "p_elastic"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p}")
        lo, hi = self.noise_std
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"AugmentConfig.noise_std must satisfy 0 <= lo <= hi <= 1, "
                             f"got {self.noise_std}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (all probabilities zero)."""
        return cls(p_hflip=0, p_vflip=0, p_noise=0, p_clahe=0, p_elastic=0)


@dataclass(frozen=True)
class NormStats:
    """Per-channel mean and standard deviation of the training images, on a 0..1 scale."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def save(self, path: str | Path) -> Path:
        """Write the statistics as JSON (atomically), to be kept with a run."""
        return atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read statistics written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: dict) -> NormStats:
        """Statistics from ``{"mean": [...], "std": [...]}`` (as saved in runs and checkpoints)."""
        if not isinstance(data, dict) or "mean" not in data or "std" not in data:
            raise ValueError(f"normalisation statistics need 'mean' and 'std', got {data!r}")
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


def compute_norm_stats(images: np.ndarray, indices: np.ndarray | None = None,
                       chunk: int = 512) -> NormStats:
    """Mean and std per channel of ``images`` (``N x H x W x 3`` uint8), computed in chunks.

    Pass ``indices`` to restrict to the training rows, so that no statistic leaks from the
    validation or test cells.
    """
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    if idx.size == 0:
        raise ValueError("cannot compute normalisation statistics of zero images")
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, idx.size, chunk):
        block = np.asarray(images[np.sort(idx[start:start + chunk])], dtype=np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        total_sq += (block ** 2).sum(axis=(0, 1, 2))
        count += block.shape[0] * block.shape[1] * block.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return NormStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def augmentations(size: int, aug: AugmentConfig | None = None) -> A.Compose:
    """The random part of the training pipeline alone (uint8 in, uint8 out), for display."""
    aug = aug or AugmentConfig()
    scale = size / 224.0
    return A.Compose([
        A.Resize(size, size),
        A.HorizontalFlip(p=aug.p_hflip),
        A.VerticalFlip(p=aug.p_vflip),
        A.GaussNoise(std_range=aug.noise_std, p=aug.p_noise),
        A.CLAHE(clip_limit=aug.clahe_clip, p=aug.p_clahe),
        A.ElasticTransform(alpha=aug.elastic_alpha * scale, sigma=max(1.0, aug.elastic_sigma * scale),
                           border_mode=cv2.BORDER_REFLECT_101, p=aug.p_elastic),
    ])


def build_train_transform(size: int, stats: NormStats,
                          aug: AugmentConfig | None = None) -> A.Compose:
    """Training pipeline: resize, flips, Gaussian noise, CLAHE, elastic, normalise, to tensor."""
    return A.Compose([
        augmentations(size, aug),
        A.Normalize(mean=stats.mean, std=stats.std, max_pixel_value=255.0),
        ToTensorV2(),
    ])


def build_eval_transform(size: int, stats: NormStats) -> A.Compose:
    """Evaluation pipeline: resize, normalise, to tensor (no randomness)."""
    return A.Compose([
        A.Resize(size, size),
        A.Normalize(mean=stats.mean, std=stats.std, max_pixel_value=255.0),
        ToTensorV2(),
    ])


def single_augmentations(size: int, aug: AugmentConfig | None = None) -> dict[str, A.Compose]:
    """Each augmentation of ``aug`` alone at probability 1, plus the full training mix.

    For showing what every step does to a cell (exploration notebook).
    """
    aug = aug or AugmentConfig()
    off = AugmentConfig.none().__dict__
    only = {
        "flip (h+v)": {"p_hflip": 1.0, "p_vflip": 1.0},
        "Gaussian noise": {"p_noise": 1.0},
        "CLAHE": {"p_clahe": 1.0},
        "elastic": {"p_elastic": 1.0},
    }
    out = {name: augmentations(size, AugmentConfig(**{**aug.__dict__, **off, **ps}))
           for name, ps in only.items()}
    out["training mix"] = augmentations(size, aug)
    return out


def to_batch(images: Sequence[np.ndarray], stats: NormStats, size: int) -> torch.Tensor:
    """Stack RGB uint8 images into a normalised ``N x 3 x size x size`` batch (eval transform)."""
    transform = build_eval_transform(size, stats)
    return torch.stack([transform(image=im)["image"] for im in images])
