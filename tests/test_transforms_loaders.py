"""Augmentation pipelines, normalisation statistics, Dataset and DataLoader factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aecnn_utils.data.cache import cache_images
from aecnn_utils.data.loaders import CellDataset, default_num_workers, make_loader
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.transforms import (
    AugmentConfig,
    NormStats,
    build_eval_transform,
    build_train_transform,
    compute_norm_stats,
)


def test_norm_stats_match_numpy() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (37, 9, 9, 3), dtype=np.uint8)
    stats = compute_norm_stats(images, chunk=5)
    ref = images.astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, ref.mean(axis=(0, 1, 2)), rtol=1e-10)
    np.testing.assert_allclose(stats.std, ref.std(axis=(0, 1, 2)), rtol=1e-8)
    sub = compute_norm_stats(images, indices=np.array([3, 1, 7]))
    np.testing.assert_allclose(sub.mean, ref[[1, 3, 7]].mean(axis=(0, 1, 2)), rtol=1e-10)
    with pytest.raises(ValueError, match="zero images"):
        compute_norm_stats(images, indices=np.array([], dtype=int))


def test_norm_stats_save_load(tmp_path: Path) -> None:
    stats = NormStats((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert NormStats.load(stats.save(tmp_path / "norm.json")) == stats


def test_eval_transform_normalises_exactly() -> None:
    stats = NormStats((0.5, 0.25, 0.75), (0.5, 0.25, 0.25))
    image = np.full((20, 20, 3), 255, np.uint8)
    out = build_eval_transform(20, stats)(image=image)["image"]
    assert out.shape == (3, 20, 20) and out.dtype == torch.float32
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [1.0, 3.0, 1.0], rtol=1e-6)


def test_eval_transform_resizes() -> None:
    stats = NormStats((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    out = build_eval_transform(32, stats)(image=np.zeros((50, 40, 3), np.uint8))
    assert out["image"].shape == (3, 32, 32)


def test_train_transform_applies_each_augmentation() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    stats = NormStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    identity = build_train_transform(48, stats, AugmentConfig.none())(image=image)["image"]
    np.testing.assert_allclose(identity.numpy().transpose(1, 2, 0), image / 255.0, atol=1e-6)
    flip = build_train_transform(48, stats, AugmentConfig(p_hflip=1, p_vflip=0, p_noise=0,
                                                          p_clahe=0, p_elastic=0))
    np.testing.assert_allclose(flip(image=image)["image"].numpy().transpose(1, 2, 0),
                               image[:, ::-1] / 255.0, atol=1e-6)
    for only in ("p_noise", "p_clahe", "p_elastic"):
        cfg = AugmentConfig(**{**AugmentConfig.none().__dict__, only: 1.0})
        out = build_train_transform(48, stats, cfg)(image=image)["image"]
        assert out.shape == (3, 48, 48)
        assert not torch.allclose(out, identity), only


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"p_hflip": 1.5}, "p_hflip must be a probability"),
    ({"noise_std": (0.2, 0.1)}, "noise_std"),
])
def test_augment_config_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_dataset_and_loader(synthetic_root: Path, cache_dir: Path) -> None:
    df = scan_dataset("sipakmed", synthetic_root / "sipakmed")
    cached = cache_images(df, 32, cache_dir, progress=False)
    stats = compute_norm_stats(cached.array())
    ds = CellDataset(cached, build_train_transform(32, stats))
    assert len(ds) == len(df)
    x, y = ds[2]
    assert x.shape == (3, 32, 32) and y == int(cached.frame.iloc[2]["label"])
    loader = make_loader(ds, batch_size=4, shuffle=True, seed=3, num_workers=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 3, 32, 32) and yb.dtype == torch.int64
    # seeded shuffling is reproducible
    order = [b[1].tolist() for b in make_loader(ds, 4, shuffle=True, seed=3, num_workers=0)]
    again = [b[1].tolist() for b in make_loader(ds, 4, shuffle=True, seed=3, num_workers=0)]
    assert order == again


def test_loader_with_workers_reads_memmap(synthetic_root: Path, cache_dir: Path) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    cached = cache_images(df, 16, cache_dir, progress=False)
    ds = CellDataset(cached)
    loader = make_loader(ds, batch_size=8, shuffle=False, num_workers=2)
    total = sum(xb.shape[0] for xb, _ in loader)
    assert total == len(df)
    assert not loader.pin_memory  # CPU


def test_default_workers_bounds() -> None:
    assert 0 <= default_num_workers("cpu") <= 4
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(CellDataset.__new__(CellDataset), batch_size=0, shuffle=False)
