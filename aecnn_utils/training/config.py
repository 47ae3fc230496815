"""Run configuration: one dataclass describes a run, and is saved next to its results.

Profiles (:func:`profile_config`; their table: ``docs/configuration.md``): ``smoke`` (seconds,
synthetic data, for tests and nbval), ``cpu`` (a real result on a 2-core CPU: SIPaKMeD trains,
the Herlev cells halved by slide into selection and report halves 20 times, 96 px, 10 epochs;
CRIC is not available) and ``paper`` (section 4: SIPaKMeD -> Herlev -> CRIC, 224 px, SGD with
momentum 0.9 and weight decay 1e-4, cosine from 1e-3, 150 epochs, patience 20, five seeds).

Protocols: ``cross`` trains on ``train``, selects on ``val``, tests on ``test`` (the same
dataset for both: halved by slide, ``val_fraction`` to selection); ``within`` splits one
dataset by groups into train/val/test (``val_fraction``, ``test_fraction``); ``kfold`` is
grouped ``n_folds``-fold cross-validation (``fold`` tests); ``adapt`` is a new lab's cells: the
target ``test`` is halved as ``cross`` halves it, ``train_cells`` cells of the other half
(whole slides, stratified) are labelled, ``select_fraction`` of them choose epoch and threshold
and the rest train, with ``train``'s other datasets (joint training). ``roots`` maps a dataset
to its own folder. ``init_from`` starts from a finished run (``last.pt``: its final epoch) and
``finetune`` says what trains (:mod:`aecnn_utils.training.finetune`).

Splits are drawn with ``split_seed`` and stay fixed across training seeds, so the runs of one
model differ only in initialisation, augmentation and batch order (the paper's "averaged
across five independent runs"). With repeated splits (``n_splits`` > 1) a run trains once,
keeps every epoch's outputs, and for each split chooses epoch and threshold on its selection
half and scores its report half (:mod:`aecnn_utils.training.scoring`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aecnn_utils import __version__
from aecnn_utils.core import names
from aecnn_utils.core.coerce import coerce
from aecnn_utils.core.errors import ConfigError
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.core.names import FINETUNE_MODES, PROFILE_NAMES
from aecnn_utils.data.cache import RESIZE_MODES
from aecnn_utils.data.segment import SEGMENTATION_VERSION, SEGMENTED_MODES
from aecnn_utils.data.taxonomy import DATASET_NAMES, SCHEMES
from aecnn_utils.data.transforms import INPUT_MODES, STAIN_NORMS, AugmentConfig
from aecnn_utils.models import MODELS, check_model_kwargs, model_defaults
from aecnn_utils.training.losses import LOSS_NAMES, WEIGHT_METHODS
from aecnn_utils.training.tuned import recipe_values, tuned_values

#: The profile's models (kept in :mod:`aecnn_utils.core.names`), as the notebooks import them.
PROFILE_MODELS, profile_models = names.PROFILE_MODELS, names.profile_models
PROTOCOLS: tuple[str, ...] = ("cross", "within", "kfold", "adapt")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")
#: Validation metrics that early stopping and checkpoint selection can monitor, and their sense.
MONITORS: dict[str, str] = {"val_loss": "min", "val_auc": "max", "val_balanced_accuracy": "max",
                            "val_f1": "max"}


#: Lower bounds of the numeric fields (image_size: five stride-2 stages need 32 px).
_MINIMA: dict[str, float] = {
    "image_size": 32, "cric_crop_size": 8, "epochs": 1, "batch_size": 1, "n_folds": 2,
    "fold": 0, "warmup_epochs": 0, "patience": 1, "n_boot": 1, "synthetic_per_class": 2,
    "num_workers": 0, "n_splits": 1, "weight_decay": 0, "mixup": 0, "momentum": 0, "gamma": 0,
    "lambda_w": 0, "lambda_f": 0, "train_cells": 0}


#: Fields added after runs were published: at their defaults (which do what the kit did before
#: them) they are left out of :meth:`RunConfig.fingerprint`, so that the run folders trained
#: before keep their ids (and are reused, not retrained).
LATER_FIELDS: tuple[str, ...] = ("mixup", "input_mode", "stain_norm", "tta", "adapt_bn",
                                 "init_from", "finetune", "train_cells", "select_fraction")
LATER_AUGMENT_FIELDS: tuple[str, ...] = ("p_stain", "stain_scale", "p_color", "p_blur",
                                         "p_zoom", "zoom_scale")
#: Model arguments whose default changed after runs were published: the run id always names
#: them (the model's current default where a config leaves them out), so that a run of the old
#: default is never taken for one of the new (AECNN's ``layers``: ``fast`` by default, ``base``
#: before; the published runs of ``base`` name it in their config).
NAMED_MODEL_KWARGS: dict[str, tuple[str, ...]] = {"aecnn": ("layers",)}


@dataclass
class RunConfig:
    """Everything that defines a training run (see the module docstring for the protocols).

    Every field is checked by :meth:`validate`; a bad value raises :class:`ConfigError` naming
    the field, the value and the valid choices.
    """

    profile: str = "custom"
    model: str = "aecnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    scheme: str = "binary"
    protocol: str = "cross"
    train: tuple[str, ...] = ("sipakmed",)
    val: tuple[str, ...] = ("herlev",)
    test: tuple[str, ...] = ("cric",)
    data_root: str = ""
    roots: dict[str, str] = field(default_factory=dict)
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
    focal_alpha: float | str | None = None
    weight_method: str = "inverse"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mixup: float = 0.0
    input_mode: str = "rgb"
    stain_norm: str = "none"
    tta: bool = False
    adapt_bn: bool = False
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
    n_splits: int = 1
    n_boot: int = 1000
    synthetic_per_class: int = 24
    init_from: str = ""
    finetune: str = "all"
    train_cells: int = 0
    select_fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("train", "val", "test", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{name}={value!r} is not valid: give a list, e.g. "
                                  f"{name}=[{'0, 1' if name == 'seeds' else 'herlev'}]")
            setattr(self, name, tuple(value))
        self.seeds = tuple(coerce("seeds", "int", s) for s in self.seeds)
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce(f.name, str(f.type), getattr(self, f.name)))
        if isinstance(self.augment, dict):
            aug = dict(self.augment)
            for key in ("noise_std", "zoom_scale"):
                if key in aug:
                    aug[key] = tuple(aug[key])
            try:
                self.augment = AugmentConfig(**aug)
            except (TypeError, ValueError) as exc:
                known = ", ".join(f.name for f in dataclasses.fields(AugmentConfig))
                raise ConfigError(f"augment={aug!r} is not valid: {exc} (fields: {known})"
                                  ) from exc
        if not isinstance(self.roots, dict) or not all(
                isinstance(v, str) and v for v in self.roots.values()):
            raise ConfigError(f"roots={self.roots!r} is not valid: give a mapping of dataset to "
                              "folder, e.g. roots={herlev: /data/my_lab}")
        self.roots = {str(k): str(v) for k, v in self.roots.items()}
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs={self.model_kwargs!r} is not valid: give a mapping, "
                              "e.g. model_kwargs={attention: channel}")
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` for a configuration that cannot run."""
        def fail(msg: str) -> None:
            raise ConfigError(msg)

        def choose(name: str, choices: Any, value: Any = None) -> None:
            value = getattr(self, name) if value is None else value
            if value not in choices:
                fail(f"{name}={value!r} is not valid; choose one of: {', '.join(choices)}")

        for name, choices in (("model", MODELS), ("scheme", SCHEMES), ("protocol", PROTOCOLS),
                              ("resize_mode", RESIZE_MODES), ("optimizer", OPTIMIZERS),
                              ("schedule", SCHEDULES), ("loss", LOSS_NAMES),
                              ("weight_method", WEIGHT_METHODS), ("monitor", MONITORS),
                              ("input_mode", INPUT_MODES), ("stain_norm", STAIN_NORMS),
                              ("finetune", FINETUNE_MODES),
                              ("profile", (*PROFILE_NAMES, "custom"))):
            choose(name, choices)
        for role in ("train", "val", "test", "roots"):
            for name in getattr(self, role):
                choose(role, DATASET_NAMES, name)
        try:
            check_model_kwargs(self.model, self.model_kwargs)
        except (TypeError, ValueError, FileNotFoundError) as exc:
            fail(f"model_kwargs={self.model_kwargs!r} is not valid for {self.model}: {exc}")
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
        if self.train_cells and self.protocol not in ("within", "adapt"):
            fail(f"train_cells={self.train_cells} draws labelled cells of one dataset: it needs "
                 "protocol='within' (a lab's folder) or 'adapt'")
        if self.n_splits > 1 and (self.protocol != "cross" or set(self.val) != set(self.test)):
            fail(f"n_splits={self.n_splits} re-splits the validation and test cells of one "
                 "dataset; it needs protocol='cross' with val and test naming the same "
                 "datasets (e.g. val=[herlev] test=[herlev]), or n_splits=1")
        if self.finetune != "all" and not self.init_from:
            fail(f"finetune={self.finetune!r} trains part of a network that init_from must name "
                 "(a finished run folder or its best.pt); set init_from, or finetune=all")
        if self.protocol == "adapt":
            if len(self.test) != 1 or set(self.val) != set(self.test) or \
                    self.test[0] not in self.train:
                fail("the 'adapt' protocol trains on labelled cells of its target: give test=[T] "
                     "val=[T] and train naming T (and, for joint training, other datasets), "
                     "e.g. train=[sipakmed, herlev] val=[herlev] test=[herlev]")
        elif self.protocol in ("within", "kfold") and len(self.train) != 1:
            fail(f"the {self.protocol!r} protocol splits one dataset; train names {self.train}")
        if self.scheme == "native":
            used = set(self.train) | (set(self.val) | set(self.test)
                                      if self.protocol == "cross" else set())
            if len(used) > 1:
                fail("the 'native' scheme has different classes per dataset; cross-dataset runs "
                     "need scheme='binary' or 'three_tier'")
        for name, low in _MINIMA.items():
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= low):
                fail(f"{name}={value} is not valid: {name} must be >= {low}")
        for name in ("val_fraction", "test_fraction", "target_sensitivity", "select_fraction"):
            if not 0 < getattr(self, name) < 1:
                fail(f"{name}={getattr(self, name)} is not valid: it must be in (0, 1)")
        if not self.lr > 0:
            fail(f"lr={self.lr} is not valid: it must be > 0")
        if self.protocol == "within" and self.val_fraction + self.test_fraction >= 1:
            fail(f"val_fraction + test_fraction must be < 1, got {self.val_fraction} + "
                 f"{self.test_fraction}")
        if self.fold >= self.n_folds or self.warmup_epochs >= self.epochs:
            fail(f"need fold < n_folds and warmup_epochs < epochs, got fold={self.fold}, "
                 f"n_folds={self.n_folds}, warmup_epochs={self.warmup_epochs}, "
                 f"epochs={self.epochs}")
        if self.momentum >= 1 or self.lambda_w + self.lambda_f == 0:
            fail(f"need momentum < 1 and lambda_w + lambda_f > 0, got momentum={self.momentum}, "
                 f"lambda_w={self.lambda_w}, lambda_f={self.lambda_f}")
        self._validate_focal_alpha()
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            fail(f"device={self.device!r} is not valid; choose one of: auto, cpu, cuda, "
                 "cuda:N, mps")
        if not self.seeds:
            fail("seeds is empty")

    def _validate_focal_alpha(self) -> None:
        alpha = self.focal_alpha
        if alpha is None or alpha == "weights":
            return
        if isinstance(alpha, int) and not isinstance(alpha, bool):
            alpha = self.focal_alpha = float(alpha)
        if isinstance(alpha, str):
            try:
                alpha = self.focal_alpha = float(alpha)
            except ValueError:
                alpha = None
        if not isinstance(alpha, float) or not 0 <= alpha <= 1:
            raise ConfigError(f"focal_alpha={self.focal_alpha!r} is not valid; choose one of: "
                              "null (alpha = 1), weights (the class weights of L_w), or a "
                              "number in [0, 1] (weight of the abnormal class, binary scheme)")
        if self.scheme != "binary":
            raise ConfigError(f"focal_alpha={alpha} needs scheme='binary' (a number weights the "
                              f"abnormal class); scheme is {self.scheme!r}: use focal_alpha="
                              "weights or null")

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
        """Short hash of everything that changes results (not device or worker count, and not
        ``data_root``: where the data lies is not what it is; the cells themselves enter the
        run id through the data fingerprint, so a moved folder, or one path written two ways,
        finds the same runs)."""
        data = self.to_dict()
        for key in ("device", "num_workers", "seeds", "n_boot", "data_root", "roots"):
            data.pop(key, None)
        if self.init_from:  # the source run (and checkpoint), wherever its folder lies now
            source = Path(self.init_from)
            data["init_from"] = source.name if source.suffix != ".pt" else (
                source.parent.name + ("" if source.name == "best.pt" else f"/{source.name}"))
        named = {k: model_defaults(self.model)[k] for k in NAMED_MODEL_KWARGS.get(self.model, ())}
        data["model_kwargs"] = {**named, **data["model_kwargs"]}
        defaults = RunConfig().to_dict()
        for where, before, later in ((data, defaults, LATER_FIELDS),
                                     (data["augment"], defaults["augment"], LATER_AUGMENT_FIELDS)):
            for key in later:
                if where.get(key) == before[key]:
                    del where[key]
        if self.resize_mode in SEGMENTED_MODES:  # a changed segmentation is another run
            data["segmentation_version"] = SEGMENTATION_VERSION
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]

    def run_id(self, data_fingerprint: str = "") -> str:
        """``<model>_<protocol-datasets>_s<seed>_<hash>``: stable, so that running the same
        config on the same data again finds (and resumes or reuses) its run folder.

        The hash covers :meth:`fingerprint`, ``data_fingerprint`` (the file list and sizes of
        the cells, :attr:`aecnn_utils.training.prepare.PreparedData.fingerprint`) and the kit's
        version: changed data or another kit release gets a new folder, never an old run.
        """
        if self.protocol == "cross":
            where = f"{'+'.join(self.train)}-{'+'.join(self.val)}-{'+'.join(self.test)}"
        elif self.protocol == "within":
            where = f"within-{self.train[0]}"
        elif self.protocol == "adapt":
            where = f"adapt-{'+'.join(self.train)}-{self.test[0]}"
        else:
            where = f"kfold{self.n_folds}-{self.train[0]}-f{self.fold}"
        key = f"{self.fingerprint()}|{data_fingerprint}|{__version__}"
        return f"{self.model}_{where}_s{self.seed}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"


PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        image_size=64, epochs=2, batch_size=16, optimizer="sgd", lr=0.05, patience=5,
        n_boot=200, seeds=(0,), amp=False,
        train=("sipakmed",), val=("herlev",), test=("cric",),
    ),
    "cpu": dict(
        image_size=96, epochs=10, batch_size=32, optimizer="sgd", lr=0.02, patience=6,
        monitor="val_auc", seeds=(0,), train=("sipakmed",), val=("herlev",), test=("herlev",),
        val_fraction=0.5, n_splits=20,
    ),
    "paper": dict(
        image_size=224, epochs=150, batch_size=32, optimizer="sgd", lr=1e-3, momentum=0.9,
        weight_decay=1e-4, schedule="cosine", patience=20, seeds=(0, 1, 2, 3, 4),
        train=("sipakmed",), val=("herlev",), test=("cric",),
    ),
}


def profile_config(profile: str, *, recipe: bool = True, tuned: bool = True,
                   **overrides: Any) -> RunConfig:
    """The named profile's configuration for ``overrides["model"]`` (default AECNN): the
    profile's values, then the method the cross-dataset study chose for the profile (unless
    ``recipe=False``: the plain recipe), then the values ``tune`` chose for that model (unless
    ``tuned=False``: the profile's own), then ``overrides``."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is not valid; choose one of: "
                          f"{', '.join(PROFILE_NAMES)}")
    chosen = recipe_values(profile) if recipe else {}
    values = tuned_values(profile, str(overrides.get("model", RunConfig.model))) if tuned else {}
    return RunConfig.from_dict({"profile": profile, **PROFILES[profile], **chosen, **values,
                                **overrides})
