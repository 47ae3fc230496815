"""PyTorch ``Dataset`` over cached cells and a ``DataLoader`` factory tuned for CPU and GPU."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from aecnn_utils.data.cache import CachedImages


class CellDataset(Dataset):
    """Cells of a :class:`CachedImages` array with an albumentations transform.

    Items are ``(image, label)``: a ``3 x S x S`` float tensor and an ``int`` label.
    """

    def __init__(self, cached: CachedImages, transform: Callable | None = None) -> None:
        self.cached = cached
        self.transform = transform
        self.labels = cached.frame["label"].to_numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = np.asarray(self.cached.array()[i])
        if self.transform is not None:
            tensor = self.transform(image=image)["image"]
        else:
            tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        return tensor, int(self.labels[i])


def default_num_workers(device: torch.device | str = "cpu") -> int:
    """Loader workers: 0 on small CPUs (a worker costs more than it saves on 2 cores with cached
    images), otherwise up to 8 on GPU hosts and 4 on CPU hosts, leaving one core for the model."""
    cores = os.cpu_count() or 1
    if cores <= 2:
        return 0
    cap = 8 if torch.device(device).type == "cuda" else 4
    return max(0, min(cap, cores - 1))


def seed_worker(worker_id: int) -> None:
    """Seed numpy, ``random`` and the dataset's albumentations pipeline in a loader worker from
    torch's per-worker seed (itself drawn from the loader's generator, so deterministic)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002  (the legacy global RNG other code may use)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    reseed_transform(getattr(info.dataset, "transform", None) if info else None, seed)


def reseed_transform(transform: Callable | None, seed: int) -> None:
    """Reseed an albumentations pipeline (no-op for other transforms)."""
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(int(seed) % 2**32)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool,
                device: torch.device | str = "cpu", num_workers: int | None = None,
                seed: int = 0, drop_last: bool = False,
                persistent_workers: bool = True) -> DataLoader:
    """A DataLoader with pinned memory on CUDA and seeded shuffling.

    For exactly reproducible (and resumable) augmentation, reseed ``loader.generator`` at each
    epoch and pass ``persistent_workers=False``: workers then restart every epoch and reseed
    their pipelines from that generator (:func:`seed_worker`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    workers = default_num_workers(device) if num_workers is None else num_workers
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=persistent_workers and workers > 0,
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
    )
