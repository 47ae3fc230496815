"""The values ``tune`` and ``study`` chose for a profile, kept in
``aecnn_utils/training/profiles/<profile>_tuned.yaml`` and read by
:func:`aecnn_utils.training.config.profile_config`: a learning rate per model, and the recipe
(the method the cross-dataset study chose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aecnn_utils.core.io import atomic_write_text

#: Folder of the tuned values (``<profile>_tuned.yaml``, written by
#: ``aecnn_utils.experiments.tune``).
TUNED_DIR = Path(__file__).parent / "profiles"


def _tuned(profile: str) -> dict[str, Any]:
    """``<profile>_tuned.yaml`` as a dict (``{}`` if there is none)."""
    path = TUNED_DIR / f"{profile}_tuned.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def tuned_values(profile: str, model: str) -> dict[str, Any]:
    """The config values ``tune`` chose for ``model`` under ``profile`` (``{}`` if untuned)."""
    entry = _tuned(profile).get(model) or {}
    return {k: entry[k] for k in ("lr",) if k in entry}


def update_tuned(profile: str, entries: dict[str, Any]) -> Path:
    """Set ``entries`` (model -> tuned values, or ``recipe`` -> the study's choice) in
    ``<profile>_tuned.yaml``, keeping the other entries; written atomically."""
    header = ("# Written by `python -m aecnn_utils tune` (learning rate per model) and `python -m "
              "aecnn_utils study` (recipe); read by profile_config.\n")
    return atomic_write_text(TUNED_DIR / f"{profile}_tuned.yaml", header + yaml.safe_dump(
        {**_tuned(profile), **entries}, sort_keys=True))


def recipe_values(profile: str) -> dict[str, Any]:
    """The config changes of the method the cross-dataset study chose for ``profile``
    (``python -m aecnn_utils study``, the ``recipe`` entry of ``<profile>_tuned.yaml``)."""
    return dict((_tuned(profile).get("recipe") or {}).get("changes") or {})
