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
#: The models a profile's notebooks train when none are named: on ``cpu`` the two that a
#: 2-core CPU trains in hours and whose runs are published (ResNet-50 and EfficientNet-B3 are
#: left to a GPU: name them); every model elsewhere.
PROFILE_MODELS: dict[str, tuple[str, ...]] = {"cpu": ("aecnn", "mobilenet_v3_small")}


def profile_models(profile: str) -> list[str]:
    """The models of :data:`PROFILE_MODELS` for ``profile`` (default every model)."""
    return list(PROFILE_MODELS.get(profile, MODEL_NAMES))
