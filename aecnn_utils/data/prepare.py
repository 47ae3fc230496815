"""The data of one run config: read, split, decoded once (cached) and normalised.

:func:`prepare_data` is what the trainer, the notebooks and the evaluation share, so that every
model of a comparison sees exactly the same cells.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..losses import class_counts
from ..splits import Splits, make_splits
from . import taxonomy
from .cache import CachedImages, cache_images, transformed_cache
from .readers import scan_dataset
from .sources import DataSource, resolve_data_source
from .transforms import InputPrep, NormStats, compute_norm_stats

#: The config fields that decide which cells go where, at which size.
DATA_FIELDS: tuple[str, ...] = (
    "data_root", "scheme", "protocol", "train", "val", "test", "val_fraction", "test_fraction",
    "n_folds", "fold", "split_seed", "image_size", "resize_mode", "cric_crop_size",
    "synthetic_per_class", "input_mode", "stain_norm", "roots", "train_cells", "select_fraction")


def data_key(config: RunConfig) -> tuple:
    """The values of :data:`DATA_FIELDS` in ``config``."""
    return tuple(getattr(config, f) for f in DATA_FIELDS)


@dataclass
class PreparedData:
    """Splits of a config, decoded once, with the training-set normalisation.

    ``caches["train"]`` holds the training cells; ``caches["pool"]`` every validation and test
    cell in one fixed order (dataset, then the reader's order), which does not depend on how
    the cells are split: a model's outputs on the pool can then be re-split at no cost.
    ``index[part]`` are the rows of the pool that form ``part`` (``val`` or ``test``).
    ``prep`` is the config's input preparation; its stain normalisation is already applied to
    the cached images, its ``input_mode`` is not (it follows the random augmentations).
    """

    source: DataSource
    splits: Splits
    caches: dict[str, CachedImages]
    index: dict[str, np.ndarray]
    norm: NormStats
    class_names: tuple[str, ...]
    key: tuple = ()
    fingerprint: str = ""
    prep: InputPrep = field(default_factory=InputPrep)

    def frame(self, part: str) -> pd.DataFrame:
        """Reader rows of ``train``, ``val``, ``test`` or ``pool``."""
        if part in ("train", "pool"):
            return self.caches[part].frame
        return self.caches["pool"].frame.iloc[self.index[part]].reset_index(drop=True)

    @property
    def train_counts(self) -> torch.Tensor:
        """Cells per class in the training set."""
        return class_counts(self.caches["train"].frame["label"].to_numpy(),
                            len(self.class_names))

    def check_matches(self, config: RunConfig) -> None:
        """Refuse data prepared for a config that differs in a :data:`DATA_FIELDS` field."""
        from ..config import ConfigError

        changed = [f for f, a, b in zip(DATA_FIELDS, self.key, data_key(config), strict=True)
                   if a != b]
        if changed:
            raise ConfigError(f"the data passed was prepared for another config (differs in "
                              f"{', '.join(changed)}); call prepare_data(config) for this one")


def data_fingerprint(splits: Splits) -> str:
    """A cheap fingerprint of the cells: split, dataset, label, file name and size of each.

    Moving the data folder keeps it; adding, removing, relabelling or replacing a file changes it.
    """
    h = hashlib.sha256()
    for part in ("train", "val", "test"):
        frame = getattr(splits, part)
        for row in frame[["dataset", "label", "path"]].itertuples(index=False):
            try:
                size = os.stat(row.path).st_size
            except OSError:
                size = -1
            h.update(f"{part}|{row.dataset}|{row.label}|{Path(row.path).name}|{size}\n".encode())
    return h.hexdigest()[:12]


def prepare_data(config: RunConfig, cache_dir: str | Path | None = None,
                 progress: bool = True) -> PreparedData:
    """Read, split, decode (cached) and normalise the data ``config`` asks for."""
    source = resolve_data_source(config.data_root, n_per_class=config.synthetic_per_class,
                                 roots=config.roots)
    names = dict.fromkeys(config.train + (config.val + config.test
                                          if config.protocol == "cross" else ()))
    frames = {}
    for name in names:
        kwargs = {"crop_size": config.cric_crop_size} if name == "cric" else {}
        frame = scan_dataset(name, source.path(name), scheme=config.scheme, **kwargs)
        frames[name] = frame.assign(scan_row=np.arange(len(frame)))
    splits = make_splits(config, frames)
    pool = pool_frame(splits, tuple(names))
    caches = {part: cache_images(frame, config.image_size, cache_dir,
                                 resize_mode=config.resize_mode, progress=progress)
              for part, frame in (("train", splits.train), ("pool", pool))}
    index = {part: np.flatnonzero(caches["pool"].frame["split"].to_numpy() == part)
             for part in ("val", "test")}
    prep = InputPrep.fit(config.input_mode, config.stain_norm, caches["train"].array(),
                         seed=config.split_seed)
    if prep.stain_norm != "none":  # deterministic and slow: once per image, in the cache
        tag = f"{prep.stain_norm}-" + hashlib.sha256(
            json.dumps(prep.reference, sort_keys=True).encode()).hexdigest()[:10]
        caches = {part: transformed_cache(cached, prep.normalise_stain, tag, progress)
                  for part, cached in caches.items()}
    norm = compute_norm_stats(caches["train"].array(), prep=prep.mode_only)
    class_names = taxonomy.class_names(config.scheme, config.train[0])
    return PreparedData(source, splits, caches, index, norm, class_names, data_key(config),
                        data_fingerprint(splits), prep)


def pool_frame(splits: Splits, order: tuple[str, ...]) -> pd.DataFrame:
    """Validation and test rows together, in dataset order (``order``), then reader order."""
    pool = pd.concat([splits.val, splits.test], ignore_index=True)
    rank = pool["dataset"].map({name: k for k, name in enumerate(order)})
    return (pool.assign(_rank=rank).sort_values(["_rank", "scan_row"], kind="stable")
            .drop(columns="_rank").reset_index(drop=True))
