"""Fine-tuning from a finished run: ``init_from`` and ``finetune`` of a :class:`RunConfig`.

A laboratory with the published model and a few hundred labelled cells of its own can start
from the model's weights instead of from scratch. The source run fixes what the network was
built for: its model and layer table, class scheme, image size, resize mode and input, and its
normalisation (the new run keeps the source's mean and sd, so the weights see the inputs they
learned on). ``finetune`` says what trains (:data:`aecnn_utils.core.names.FINETUNE_MODES`):

``all``      every weight;
``head+bn``  the classifier head and every BatchNorm layer (affine and running statistics),
             the usual cheap adaptation to a new stain and scanner;
``head``     the classifier head alone, BatchNorm statistics frozen (a linear probe).

The new run records its source's id (``source_run`` in ``metrics.json`` and ``best.pt``), and is
otherwise a run like any other: ``evaluate``, ``predict``, ``export`` and calibration take it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from aecnn_utils.data.errors import LabelError
from aecnn_utils.data.transforms import NormStats
from aecnn_utils.models import model_defaults
from aecnn_utils.training.config import ConfigError, RunConfig
from aecnn_utils.training.prepare import PreparedData
from aecnn_utils.training.runs import resolve_run

#: What a fine-tune shares with its source run (a mismatch is refused).
SHARED_FIELDS: tuple[str, ...] = ("model", "model_kwargs", "scheme", "image_size",
                                  "resize_mode", "input_mode", "stain_norm")
#: Fewest labelled cells of each class that a fine-tune accepts.
MIN_CELLS_PER_CLASS = 10


@dataclass(frozen=True)
class Source:
    """The run a fine-tune starts from: its folder, config, weights and checkpoint metadata."""

    run_dir: Path
    config: RunConfig
    weights: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def run_id(self) -> str:
        """The source run's id (its folder name)."""
        return self.run_dir.name

    def adopt(self, data: PreparedData) -> PreparedData:
        """``data`` with the source's normalisation, after checking its classes."""
        if tuple(self.meta["class_names"]) != tuple(data.class_names):
            raise ConfigError(f"init_from {self.run_id} predicts {self.meta['class_names']}, "
                              f"the data has {list(data.class_names)}: use its scheme")
        norm = self.meta["norm"]
        return dataclasses.replace(data, norm=NormStats(tuple(norm["mean"]), tuple(norm["std"])))


def load_source(config: RunConfig) -> Source:
    """The source run of ``config.init_from`` (a run folder or its ``best.pt``; its ``last.pt``
    for the final epoch's weights), refused with a
    one-line error where it differs from ``config`` in a :data:`SHARED_FIELDS` field."""
    run_dir = resolve_run(config.init_from)
    given = Path(config.init_from)
    checkpoint = given if given.suffix == ".pt" else run_dir / "best.pt"
    source = RunConfig.load(run_dir / "config.yaml")
    for name in SHARED_FIELDS:
        theirs, ours = getattr(source, name), getattr(config, name)
        if name == "model_kwargs":  # a default left out is the same model as one named
            same = ({**model_defaults(source.model), **theirs}
                    == {**model_defaults(config.model), **ours})
        else:
            same = theirs == ours
        if not same:
            raise ConfigError(f"init_from {run_dir.name} was trained with {name}={theirs!r}, "
                              f"this config has {name}={ours!r}: a fine-tune keeps its "
                              f"source's {name} (set {name}={theirs!r})")
    if config.stain_norm != "none":
        raise ConfigError("fine-tuning with stain_norm is not supported: the normalisation's "
                          "reference cells would be the new lab's, not the source's; use "
                          "stain_norm=none")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    meta = {k: v for k, v in ckpt.items() if k != "model"}
    return Source(run_dir, source, ckpt["model"], meta)


def classifier_head(model: nn.Module) -> nn.Module:
    """The classifier head of a kit model (``classifier`` of AECNN, EfficientNet and
    MobileNetV3; ``fc`` of ResNet)."""
    for name in ("classifier", "fc", "head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ConfigError(f"{type(model).__name__} has no classifier head (classifier, fc or "
                      "head): use finetune=all")


def start_from(model: nn.Module, source: Source, mode: str) -> None:
    """Load the source's weights into ``model`` and freeze what ``mode`` does not train."""
    model.load_state_dict(source.weights)
    if mode == "all":
        return
    trained = {id(p) for p in classifier_head(model).parameters()}
    if mode == "head+bn":
        trained |= {id(p) for m in model.modules() if isinstance(m, _BatchNorm)
                    for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trained)


def freeze_statistics(model: nn.Module, mode: str) -> None:
    """After ``model.train()``: with ``mode`` ``head``, BatchNorm keeps its running statistics."""
    if mode == "head":
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.eval()


def check_labelled(config: RunConfig, where: str | Path) -> None:
    """Refuse a lab's labelled cells (``config.train[0]`` under ``where``, as ``train_cells``
    draws them) that miss a class or hold fewer than :data:`MIN_CELLS_PER_CLASS` of one."""
    from aecnn_utils.data import taxonomy
    from aecnn_utils.data.readers import scan_dataset
    from aecnn_utils.data.splits import draw_cells

    dataset = config.train[0]
    frame = draw_cells(scan_dataset(dataset, where, scheme=config.scheme), config.train_cells,
                       config.split_seed)
    counts = frame["label_name"].value_counts()
    names = taxonomy.class_names(config.scheme, dataset)
    for name in names:
        n = int(counts.get(name, 0))
        if n < MIN_CELLS_PER_CLASS:
            what = f"no {name!r} cells" if n == 0 else f"only {n} {name!r} cell(s)"
            drawn = " among the cells drawn" if config.train_cells else ""
            raise LabelError(f"{where} has {what}{drawn}: fine-tuning needs at least "
                             f"{MIN_CELLS_PER_CLASS} labelled cells of every class "
                             f"({', '.join(names)}), on several slides; label more cells or "
                             "raise --cells")


#: Epochs of a fine-tune on a lab's cells (a few hundred cells are a few steps an epoch).
FINETUNE_EPOCHS = 30


def finetune_config(run: str | Path, dataset: str, root: str | Path, *, cells: int = 0,
                    train: str = "all", **overrides: Any) -> RunConfig:
    """The config of ``python -m aecnn_utils finetune RUN --dataset D --root DIR``: the source
    run's config, fine-tuned (``train``, a :data:`FINETUNE_MODES` entry) on the labelled cells
    of ``dataset`` under ``root`` (``cells`` of them, by slide and stratified; 0: all), split by
    slide into training (60%), the selection part that chooses epoch and threshold (20%) and
    the lab's own report part (20%); :data:`FINETUNE_EPOCHS` epochs; ``overrides`` last."""
    run_dir = resolve_run(run)
    source = RunConfig.load(run_dir / "config.yaml")
    changes = {"protocol": "within", "train": (dataset,), "val": (dataset,),
               "test": (dataset,), "data_root": "", "roots": {dataset: str(root)},
               "init_from": str(run_dir), "finetune": train, "train_cells": cells,
               "val_fraction": 0.2, "test_fraction": 0.2, "n_splits": 1,
               "epochs": FINETUNE_EPOCHS, "seeds": source.seeds[:1], **overrides}
    return source.replace(**changes)
