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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from aecnn_utils.core.io import atomic_write_json
from aecnn_utils.data.segment import haematoxylin

#: What the model sees: colour, grey level, or the haematoxylin stain alone (as grey).
INPUT_MODES: tuple[str, ...] = ("rgb", "grey", "haematoxylin")
#: Stain normalisation of every image to the training set's stain (torchstain).
STAIN_NORMS: tuple[str, ...] = ("none", "macenko", "reinhard")


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

    Beyond the paper (off by default; the cross-dataset study switches them on):
        p_stain: probability of HED-space stain jitter (Tellez et al. 2019, albumentations'
            ``HEStain``): each stain's amount scaled by 1 +- ``stain_scale`` and shifted by
            +- ``stain_scale``.
        p_color: probability of colour jitter (brightness, contrast, saturation 0.2, hue 0.05).
        p_blur: probability of a Gaussian blur (sigma 0.5-2 px at 224 px, scaled; at least 0.4).
        p_zoom: probability of a random zoom-in crop covering ``zoom_scale`` of the area.
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
    p_stain: float = 0.0
    stain_scale: float = 0.05
    p_color: float = 0.0
    p_blur: float = 0.0
    p_zoom: float = 0.0
    zoom_scale: tuple[float, float] = (0.35, 1.0)

    def __post_init__(self) -> None:
        for name in ("p_hflip", "p_vflip", "p_noise", "p_clahe", "p_elastic", "p_stain",
                     "p_color", "p_blur", "p_zoom", "stain_scale"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p}")
        lo, hi = self.noise_std
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"AugmentConfig.noise_std must satisfy 0 <= lo <= hi <= 1, "
                             f"got {self.noise_std}")
        lo, hi = self.zoom_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"AugmentConfig.zoom_scale must satisfy 0 < lo <= hi <= 1, "
                             f"got {self.zoom_scale}")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (all probabilities zero)."""
        return cls(p_hflip=0, p_vflip=0, p_noise=0, p_clahe=0, p_elastic=0)

    @classmethod
    def strong(cls) -> AugmentConfig:
        """The paper's set plus stain and colour jitter, blur and random zoom."""
        return cls(p_stain=0.5, p_color=0.5, p_blur=0.2, p_zoom=0.5)


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


@dataclass(frozen=True)
class InputPrep:
    """The fixed (not random) image preparation before normalisation: stain normalisation to a
    reference fitted on training images (``stain_norm``), then ``input_mode``.

    ``reference`` holds the fitted stain parameters (JSON-able), so that a checkpoint
    prepares images exactly as in training. A Macenko fit can fail on an image with too little
    stain: such an image passes unchanged (it is counted in :attr:`failures` of the process).
    """

    mode: str = "rgb"
    stain_norm: str = "none"
    reference: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in INPUT_MODES:
            raise ValueError(f"input_mode={self.mode!r}; choose one of {', '.join(INPUT_MODES)}")
        if self.stain_norm not in STAIN_NORMS:
            raise ValueError(f"stain_norm={self.stain_norm!r}; choose one of "
                             f"{', '.join(STAIN_NORMS)}")

    @property
    def identity(self) -> bool:
        """True when images pass unchanged."""
        return self.mode == "rgb" and self.stain_norm == "none"

    @classmethod
    def fit(cls, mode: str, stain_norm: str, images: np.ndarray, n: int = 64,
            seed: int = 0) -> InputPrep:
        """Fit ``stain_norm`` to a mosaic of ``n`` training images (drawn with ``seed``)."""
        if stain_norm == "none":
            return cls(mode, stain_norm)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
        tiles = np.asarray(images[pick])
        side = int(np.ceil(np.sqrt(len(tiles))))
        tiles = np.concatenate([tiles, np.repeat(tiles[:1], side * side - len(tiles), 0)])
        h, w = tiles.shape[1:3]
        mosaic = tiles.reshape(side, side, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(
            side * h, side * w, 3)
        normaliser = _stain_normaliser(stain_norm)
        normaliser.fit(mosaic)
        if stain_norm == "macenko":
            reference = {"HERef": normaliser.HERef.tolist(),
                         "maxCRef": normaliser.maxCRef.tolist()}
        else:
            reference = {"target_means": np.asarray(normaliser.target_means).tolist(),
                         "target_stds": np.asarray(normaliser.target_stds).tolist()}
        return cls(mode, stain_norm, reference)

    def to_dict(self) -> dict:
        """``{"mode", "stain_norm", "reference"}``, as stored in checkpoints."""
        return {"mode": self.mode, "stain_norm": self.stain_norm, "reference": self.reference}

    @classmethod
    def from_dict(cls, data: dict | None) -> InputPrep:
        """Rebuild from :meth:`to_dict` (``None``: a checkpoint from before, plain RGB)."""
        return cls(**data) if data else cls()

    @property
    def mode_only(self) -> InputPrep:
        """The same preparation without stain normalisation (the trainer normalises the stain
        once, in the cache, and applies ``input_mode`` after the random augmentations)."""
        return InputPrep(self.mode)

    def __call__(self, image: np.ndarray, **_: object) -> np.ndarray:
        """Prepare one RGB ``uint8`` image (or an ``N x H x W x 3`` batch)."""
        if self.stain_norm != "none":
            image = self.normalise_stain(image)
        if self.mode == "grey":
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else \
                np.round(image @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        if self.mode == "haematoxylin":  # the H stain alone, re-rendered as transmitted light
            h_only = np.clip(255.0 * np.exp(-haematoxylin(image)), 0, 255).astype(np.uint8)
            return np.repeat(h_only[..., None], 3, axis=-1)
        return image

    def normalise_stain(self, image: np.ndarray) -> np.ndarray:
        """Stain normalisation alone, of one image or an ``N x H x W x 3`` batch."""
        if self.stain_norm == "none":
            return image
        if image.ndim == 4:
            return np.stack([self.normalise_stain(im) for im in image])
        normaliser = _stain_normaliser(self.stain_norm)
        for key, value in self.reference.items():
            setattr(normaliser, key, np.asarray(value))
        try:
            out = normaliser.normalize(I=image, stains=False)[0] if self.stain_norm == \
                "macenko" else normaliser.normalize(image)
        except (np.linalg.LinAlgError, ValueError, IndexError):
            return image  # too little stain to fit (e.g. an empty crop): leave it
        return np.clip(np.asarray(out), 0, 255).astype(np.uint8).reshape(image.shape)


def _stain_normaliser(name: str) -> object:
    import torchstain

    if name == "macenko":
        return torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    return torchstain.normalizers.ReinhardNormalizer(backend="numpy")


def compute_norm_stats(images: np.ndarray, indices: np.ndarray | None = None,
                       chunk: int = 512, prep: InputPrep | None = None) -> NormStats:
    """Mean and std per channel of ``images`` (``N x H x W x 3`` uint8), computed in chunks.

    Pass ``indices`` to restrict to the training rows, so that no statistic leaks from the
    validation or test cells, and ``prep`` to measure the images as the model will see them.
    """
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    if idx.size == 0:
        raise ValueError("cannot compute normalisation statistics of zero images")
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for start in range(0, idx.size, chunk):
        block = np.asarray(images[np.sort(idx[start:start + chunk])])
        if prep is not None and not prep.identity:
            block = prep(block)
        block = block.astype(np.float64) / 255.0
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
    k = aug.stain_scale
    return A.Compose([
        A.Resize(size, size),
        A.RandomResizedCrop((size, size), scale=aug.zoom_scale, ratio=(0.9, 1.1), p=aug.p_zoom),
        A.HorizontalFlip(p=aug.p_hflip),
        A.VerticalFlip(p=aug.p_vflip),
        A.HEStain(method="preset", preset="ruifrok", intensity_scale_range=(1 - k, 1 + k),
                  intensity_shift_range=(-k, k), p=aug.p_stain),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=aug.p_color),
        A.GaussianBlur(blur_limit=0, sigma_limit=(max(0.4, 0.5 * scale), max(0.6, 2.0 * scale)),
                       p=aug.p_blur),
        A.GaussNoise(std_range=aug.noise_std, p=aug.p_noise),
        A.CLAHE(clip_limit=aug.clahe_clip, p=aug.p_clahe),
        A.ElasticTransform(alpha=aug.elastic_alpha * scale, sigma=max(1.0, aug.elastic_sigma * scale),
                           border_mode=cv2.BORDER_REFLECT_101, p=aug.p_elastic),
    ])


def _to_model(stats: NormStats, prep: InputPrep | None) -> list:
    """``prep`` (stain normalisation, input mode), normalise, to tensor."""
    return [*([] if prep is None or prep.identity else [A.Lambda(image=prep, p=1.0)]),
            A.Normalize(mean=stats.mean, std=stats.std, max_pixel_value=255.0), ToTensorV2()]


def build_train_transform(size: int, stats: NormStats, aug: AugmentConfig | None = None,
                          prep: InputPrep | None = None) -> A.Compose:
    """Training pipeline: resize, flips, Gaussian noise, CLAHE, elastic (and the optional
    augmentations), then ``prep`` (stain normalisation, input mode), normalise, to tensor."""
    return A.Compose([augmentations(size, aug), *_to_model(stats, prep)])


def build_eval_transform(size: int, stats: NormStats, prep: InputPrep | None = None
                         ) -> A.Compose:
    """Evaluation pipeline: resize, ``prep``, normalise, to tensor (no randomness)."""
    return A.Compose([A.Resize(size, size), *_to_model(stats, prep)])


def single_augmentations(size: int, aug: AugmentConfig | None = None) -> dict[str, A.Compose]:
    """Each augmentation of ``aug`` alone at probability 1, plus the full training mix.

    For showing what every step does to a cell (exploration notebook).
    """
    aug = aug or AugmentConfig()
    off = {k: v for k, v in vars(AugmentConfig.none()).items() if k.startswith("p_")}
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


def to_batch(images: Sequence[np.ndarray], stats: NormStats, size: int,
             prep: InputPrep | None = None) -> torch.Tensor:
    """Stack RGB uint8 images into a normalised ``N x 3 x size x size`` batch (eval transform)."""
    transform = build_eval_transform(size, stats, prep)
    return torch.stack([transform(image=im)["image"] for im in images])
