"""A run's parts, each built from its :class:`~aecnn_utils.training.config.RunConfig` by one
small function: model, loss (Eq. 4-7), optimiser, learning-rate schedule and loaders, seeded."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from aecnn_utils.data.loaders import CellDataset, default_num_workers, make_loader
from aecnn_utils.data.transforms import build_eval_transform, build_train_transform
from aecnn_utils.models import build_model
from aecnn_utils.training.config import RunConfig
from aecnn_utils.training.losses import build_loss
from aecnn_utils.training.prepare import PreparedData


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (legacy global RNG used by third-party code)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                   schedule: str) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step learning rate: linear warm-up from ``1/warmup_steps`` of the base rate, then
    cosine decay to zero over the remaining steps (``cosine``, section 4) or flat
    (``constant``); torch's ``SequentialLR(LinearLR, CosineAnnealingLR)``."""
    sched = torch.optim.lr_scheduler
    after = (sched.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps))
             if schedule == "cosine" else sched.ConstantLR(optimizer, factor=1.0, total_iters=0))
    if not warmup_steps:
        return after
    warmup = sched.LinearLR(optimizer, 1 / warmup_steps, 1.0, total_iters=max(1, warmup_steps - 1))
    return sched.SequentialLR(optimizer, [warmup, after], milestones=[warmup_steps])


def make_model(config: RunConfig, num_classes: int, device: torch.device,
               channels_last: bool) -> nn.Module:
    """The config's model (``model``, ``model_kwargs``) on ``device``."""
    model = build_model(config.model, num_classes, **config.model_kwargs).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def make_loss(config: RunConfig, counts: torch.Tensor) -> nn.Module:
    """The config's loss (``loss``, ``gamma``, ``lambda_w``, ``lambda_f``, ``focal_alpha``,
    ``weight_method``), class weights from the training counts (Eq. 5-6)."""
    return build_loss(config.loss, counts, gamma=config.gamma, lambda_w=config.lambda_w,
                      lambda_f=config.lambda_f, weight_method=config.weight_method,
                      focal_alpha=config.focal_alpha)


def make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (section 4) or AdamW, with the config's learning rate and decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_loaders(config: RunConfig, data: PreparedData,
                 device: torch.device) -> dict[str, torch.utils.data.DataLoader]:
    """Training loader (augmented, shuffled, seeded) and the loader of the pool (every
    validation and test cell, in a fixed order)."""
    workers = default_num_workers(device) if config.num_workers is None else config.num_workers
    train_ds = CellDataset(data.caches["train"],  # (stain already normalised in the cache)
                           build_train_transform(config.image_size, data.norm, config.augment,
                                                 data.prep.mode_only))
    loaders = {"train": make_loader(train_ds, config.batch_size, shuffle=True, device=device,
                                    num_workers=workers, seed=config.seed,
                                    drop_last=len(train_ds) > config.batch_size,
                                    persistent_workers=False)}
    eval_tf = build_eval_transform(config.image_size, data.norm, data.prep.mode_only)
    loaders["pool"] = make_loader(CellDataset(data.caches["pool"], eval_tf),
                                  max(64, config.batch_size), shuffle=False, device=device,
                                  num_workers=workers)
    return loaders
