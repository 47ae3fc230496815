"""Run configuration: one dataclass describes a run, and is saved next to its results.

Three named profiles (:func:`profile_config`):

``smoke``  seconds on a CPU: tiny synthetic data, 64 px, 2 epochs; for tests and nbval.
``cpu``    a real result on a 2-core CPU within the hour: the real SIPaKMeD for training, one
           grouped half of the available Herlev cells for model selection and the other half for
           testing (CRIC is not available on the kit's machines), 96 px, few epochs.
``paper``  section 4 exactly: SIPaKMeD -> Herlev -> CRIC, 224 px, batch 32, SGD (momentum 0.9,
           weight decay 1e-4), cosine decay from lr 1e-3, 150 epochs, early stopping with
           patience 20, five seeds.

Protocols (``protocol``):

``cross``  train on ``train``, select on ``val``, test on ``test`` (dataset names). When ``val``
           and ``test`` name the same dataset(s) they are split into two grouped, stratified
           parts (``val_fraction`` to validation), so no slide is in both.
``within`` one dataset (``train``) split into train/val/test by groups, stratified
           (``val_fraction``, ``test_fraction``).
``kfold``  ``n_folds``-fold grouped, stratified cross-validation on ``train``; ``fold`` is the
           test fold and validation is carved (grouped) from the remaining folds.

Splits are drawn with ``split_seed`` and stay fixed across training seeds (``seed``/``seeds``):
the runs of one model differ only in initialisation, augmentation and batch order, as in the
paper's "averaged across five independent runs".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.taxonomy import SCHEMES
from .data.transforms import AugmentConfig
from .io import atomic_write_text

PROTOCOLS: tuple[str, ...] = ("cross", "within", "kfold")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")
MONITORS: dict[str, str] = {"val_loss": "min", "val_auc": "max", "val_balanced_accuracy": "max",
                            "val_f1": "max"}
DATASET_NAMES: tuple[str, ...] = ("sipakmed", "herlev", "cric")


class ConfigError(ValueError):
    """A run configuration that cannot work; the message names the field and the fix."""


@dataclass
class RunConfig:
    """Everything that defines a training run (see the module docstring for the protocols)."""

    profile: str = "custom"
    model: str = "aecnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    scheme: str = "binary"
    protocol: str = "cross"
    train: tuple[str, ...] = ("sipakmed",)
    val: tuple[str, ...] = ("herlev",)
    test: tuple[str, ...] = ("cric",)
    data_root: str = ""
    val_fraction: float = 0.5
    test_fraction: float = 0.2
    n_folds: int = 5
    fold: int = 0
    image_size: int = 224
    resize_mode: str = "pad"
    cric_crop_size: int = 100
    epochs: int = 150
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    loss: str = "hybrid"
    lambda_w: float = 1.0
    lambda_f: float = 1.0
    gamma: float = 2.0
    weight_method: str = "inverse"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    monitor: str = "val_loss"
    patience: int = 20
    seed: int = 0
    seeds: tuple[int, ...] = (0,)
    split_seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    num_workers: int | None = None
    target_sensitivity: float = 0.95
    n_boot: int = 1000
    synthetic_per_class: int = 24

    def __post_init__(self) -> None:
        for name in ("train", "val", "test", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            setattr(self, name, tuple(value))
        if isinstance(self.augment, dict):
            aug = dict(self.augment)
            if "noise_std" in aug:
                aug["noise_std"] = tuple(aug["noise_std"])
            self.augment = AugmentConfig(**aug)
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` for a configuration that cannot run."""
        from .models import MODELS

        def fail(msg: str) -> None:
            raise ConfigError(msg)

        if self.model not in MODELS:
            fail(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.scheme not in SCHEMES:
            fail(f"unknown label scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}")
        if self.protocol not in PROTOCOLS:
            fail(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        for role in ("train", "val", "test"):
            for name in getattr(self, role):
                if name not in DATASET_NAMES:
                    fail(f"unknown dataset {name!r} in {role}; choose from "
                         f"{', '.join(DATASET_NAMES)}")
        if not self.train:
            fail("train names no dataset")
        if self.protocol == "cross":
            if not self.val or not self.test:
                fail("the 'cross' protocol needs val and test datasets (use protocol='within' "
                     "to split one dataset)")
            if set(self.train) & (set(self.val) | set(self.test)):
                fail(f"train datasets {self.train} overlap val/test {self.val}/{self.test}: "
                     "cells would leak; use protocol='within' or 'kfold' for one dataset")
            if set(self.val) != set(self.test) and set(self.val) & set(self.test):
                fail("val and test must be either the same datasets (split by groups) or "
                     "disjoint")
        if self.protocol in ("within", "kfold") and len(self.train) != 1:
            fail(f"the {self.protocol!r} protocol splits one dataset; train names {self.train}")
        if self.scheme == "native":
            used = set(self.train) | (set(self.val) | set(self.test)
                                      if self.protocol == "cross" else set())
            if len(used) > 1:
                fail("the 'native' scheme has different classes per dataset; cross-dataset runs "
                     "need scheme='binary' or 'three_tier'")
        if not 0 < self.val_fraction < 1:
            fail(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        within_too_big = self.protocol == "within" and self.val_fraction + self.test_fraction >= 1
        if not 0 < self.test_fraction < 1 or within_too_big:
            fail(f"test_fraction must be in (0, 1) and val_fraction + test_fraction < 1, got "
                 f"{self.test_fraction}")
        if self.n_folds < 2 or not 0 <= self.fold < self.n_folds:
            fail(f"need n_folds >= 2 and 0 <= fold < n_folds, got {self.n_folds}, {self.fold}")
        if self.image_size < 32:
            fail(f"image_size must be >= 32 (five stride-2 stages), got {self.image_size}")
        if self.epochs < 1 or self.batch_size < 1:
            fail(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            fail(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            fail(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            fail(f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; got {self.lr}, "
                 f"{self.weight_decay}, {self.momentum}")
        if self.monitor not in MONITORS:
            fail(f"unknown monitor {self.monitor!r}; choose one of {', '.join(MONITORS)}")
        if self.patience < 1:
            fail(f"patience must be >= 1, got {self.patience}")
        if not 0 < self.target_sensitivity < 1:
            fail(f"target_sensitivity must be in (0, 1), got {self.target_sensitivity}")
        if not self.seeds:
            fail("seeds is empty")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), as written to ``config.yaml``."""
        def plain(v: Any) -> Any:
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild a config; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: "
                              f"{', '.join(sorted(known))}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the config as YAML (atomically)."""
        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config written by :meth:`save` (YAML or JSON)."""
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated)."""
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def fingerprint(self) -> str:
        """Short hash of everything that changes results (not device or worker count)."""
        data = self.to_dict()
        for key in ("device", "num_workers", "seeds", "n_boot"):
            data.pop(key, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]

    def run_id(self) -> str:
        """``<model>_<protocol-datasets>_s<seed>_<fingerprint>``: stable, so that running the
        same config again finds (and resumes or reuses) its run folder."""
        if self.protocol == "cross":
            where = f"{'+'.join(self.train)}-{'+'.join(self.val)}-{'+'.join(self.test)}"
        elif self.protocol == "within":
            where = f"within-{self.train[0]}"
        else:
            where = f"kfold{self.n_folds}-{self.train[0]}-f{self.fold}"
        return f"{self.model}_{where}_s{self.seed}_{self.fingerprint()}"


PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        image_size=64, epochs=2, batch_size=16, optimizer="sgd", lr=0.05, patience=5,
        n_boot=200, seeds=(0,), amp=False,
        train=("sipakmed",), val=("herlev",), test=("cric",),
    ),
    "cpu": dict(
        image_size=96, epochs=10, batch_size=32, optimizer="sgd", lr=0.02, patience=6,
        monitor="val_auc", seeds=(0,), train=("sipakmed",), val=("herlev",), test=("herlev",),
        val_fraction=0.5,
    ),
    "paper": dict(
        image_size=224, epochs=150, batch_size=32, optimizer="sgd", lr=1e-3, momentum=0.9,
        weight_decay=1e-4, schedule="cosine", patience=20, seeds=(0, 1, 2, 3, 4),
        train=("sipakmed",), val=("herlev",), test=("cric",),
    ),
}


def profile_config(profile: str, **overrides: Any) -> RunConfig:
    """The named profile's configuration, with ``overrides`` applied."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return RunConfig.from_dict({"profile": profile, **PROFILES[profile], **overrides})
