"""The names the command line offers as choices, kept here so that ``--help`` and argument
errors need no torch. The modules that own each table take its names from here
(``tests/test_layers.py`` checks that they agree)."""

from __future__ import annotations

#: The models of :data:`aecnn_utils.models.MODELS`.
MODEL_NAMES: tuple[str, ...] = ("aecnn", "resnet50", "efficientnet_b3", "mobilenet_v3_small")
#: The profiles of :data:`aecnn_utils.training.config.PROFILES`.
PROFILE_NAMES: tuple[str, ...] = ("smoke", "cpu", "paper")
#: What a fine-tune trains: every weight, the head and BatchNorm, or the head alone.
FINETUNE_MODES: tuple[str, ...] = ("all", "head+bn", "head")
#: What a grid does with a run folder that exists.
IF_EXISTS: tuple[str, ...] = ("resume", "overwrite", "error")
#: The synthetic CRIC layouts.
CRIC_LAYOUTS: tuple[str, ...] = ("official", "cropped")
#: The comparison settings of the grid: across datasets, and in-domain.
SETTINGS: tuple[str, ...] = ("cross", "in_domain")
#: Where a grid's runs train (:mod:`aecnn_utils.training.workers`).
EXECUTORS: tuple[str, ...] = ("serial", "local", "slurm")
