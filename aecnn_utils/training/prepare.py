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

from aecnn_utils.core.errors import ConfigError, warn
from aecnn_utils.data import taxonomy
from aecnn_utils.data.cache import CachedImages, cache_images, transformed_cache
from aecnn_utils.data.errors import DataWarning
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.sources import DataSource, resolve_data_source
from aecnn_utils.data.splits import Splits, draw_cells, group_folds, grouped_split
from aecnn_utils.data.transforms import InputPrep, NormStats, compute_norm_stats
from aecnn_utils.training.config import RunConfig
from aecnn_utils.training.losses import class_counts

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
        from aecnn_utils.training.config import ConfigError

        changed = [f for f, a, b in zip(DATA_FIELDS, self.key, data_key(config), strict=True)
                   if a != b]
        if changed:
            raise ConfigError(f"the data passed was prepared for another config (differs in "
                              f"{', '.join(changed)}); call prepare_data(config) for this one")


def shared_data(config: RunConfig, shared: dict[str, PreparedData],
                progress: bool = False) -> PreparedData:
    """The data of ``config``, prepared once per :func:`data_key` in ``shared`` (a grid's
    configs share their cells: a reused run then costs no scan, decode or fit)."""
    key = repr(data_key(config))
    if key not in shared:
        shared[key] = prepare_data(config, progress=progress)
    return shared[key]


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


def make_splits(config: RunConfig, frames: dict[str, pd.DataFrame]) -> Splits:
    """Assign reader rows to train/val/test as ``config.protocol`` says; check the result.

    Raises:
        ConfigError: a split is empty, or validation/test holds a class the training set lacks.
    """
    def cat(names: tuple[str, ...]) -> pd.DataFrame:
        missing = [n for n in names if n not in frames]
        if missing:
            raise ConfigError(f"dataset(s) {', '.join(missing)} are not available; "
                              f"available: {', '.join(frames)}")
        return pd.concat([frames[n] for n in names], ignore_index=True)

    seed = config.split_seed
    if config.protocol == "cross":
        train = cat(config.train)
        if set(config.val) == set(config.test):
            test, val = grouped_split(cat(config.val), config.val_fraction, seed)
        else:
            val, test = cat(config.val), cat(config.test)
    elif config.protocol == "within":
        rest, test = grouped_split(draw_cells(cat(config.train), config.train_cells, seed),
                                   config.test_fraction, seed)
        train, val = grouped_split(rest, config.val_fraction / (1 - config.test_fraction), seed)
    elif config.protocol == "adapt":  # the halves of `cross`; labelled cells from one of them
        test, pool = grouped_split(cat(config.test), config.val_fraction, seed)
        labelled = draw_cells(pool, config.train_cells, seed)
        # the selection slides drawn like the labelled ones: each class near its share, so
        # that few labelled cells still leave every class to train on
        val = draw_cells(labelled, max(1, round(config.select_fraction * len(labelled))), seed)
        own = labelled[~labelled["path"].isin(set(val["path"]))].reset_index(drop=True)
        others = tuple(d for d in config.train if d not in config.test)
        train = pd.concat([cat(others), own], ignore_index=True) if others else own
    else:  # kfold
        data = cat(config.train)
        folds = group_folds(data, config.n_folds, seed)
        test = data[folds == config.fold].reset_index(drop=True)
        train, val = grouped_split(data[folds != config.fold].reset_index(drop=True),
                                   1 / (config.n_folds - 1), seed)
    splits = Splits(train.assign(split="train"), val.assign(split="val"),
                    test.assign(split="test"))
    check_splits(splits)
    return splits


def check_splits(splits: Splits) -> None:
    """Refuse empty splits, shared groups, and val/test classes absent from training."""
    for name, df in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(df) == 0:
            raise ConfigError(f"the {name} split is empty")
    train_labels = set(splits.train["label_name"])
    for name, df in (("val", splits.val), ("test", splits.test)):
        extra = sorted(set(df["label_name"]) - train_labels)
        if extra:
            raise ConfigError(f"the {name} set has class(es) {', '.join(extra)} that the "
                              "training set lacks; the model cannot learn them. Choose another "
                              "label scheme or datasets.")
        if df["label"].nunique() < 2:
            warn(f"the {name} set holds a single class: AUC is undefined there",
                          DataWarning)
        shared = set(splits.train["patient_or_slide"]) & set(df["patient_or_slide"])
        same_data = set(splits.train["dataset"]) & set(df["dataset"])
        if shared and same_data:
            raise ConfigError(f"groups {sorted(shared)[:3]} are in both train and {name}")
    if set(splits.val["dataset"]) & set(splits.test["dataset"]):
        shared = set(splits.val["patient_or_slide"]) & set(splits.test["patient_or_slide"])
        if shared:
            raise ConfigError(f"groups {sorted(shared)[:3]} are in both val and test")
