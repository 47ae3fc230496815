"""Values given as text: ``--set key=value`` items as config overrides, and a text value as the
scalar type of its config field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aecnn_utils.core.errors import ConfigError

#: Scalar field types that values given as text (``--set lr=1e-3``) are converted to.
SCALARS: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


def coerce(name: str, kind: str, value: Any) -> Any:
    """``value`` as the scalar type ``kind`` of field ``name`` (text converted), or ConfigError."""
    optional = kind.endswith(" | None")
    base = kind.removesuffix(" | None")
    if base not in SCALARS or (optional and value is None):
        return value
    target = SCALARS[base]
    if isinstance(value, str) and target in (int, float):
        try:
            value = target(value)
        except ValueError:
            pass
    accepted = (int, float) if target is float else target
    if not isinstance(value, accepted) or (isinstance(value, bool) and target is not bool):
        raise ConfigError(f"{name}={value!r} is not valid: {name} must be {kind}")
    return float(value) if target is float else value


def parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """``["lr=0.01", "augment.p_noise=0.5", "train=[herlev]"]`` -> config overrides; values are
    YAML (numbers, lists, null), dotted keys reach nested fields such as ``augment``."""
    import yaml

    overrides: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
        *parents, leaf = key.strip().split(".")
        target = overrides
        for name in parents:
            target = target.setdefault(name, {})  # type: ignore[assignment]
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: {name} is set both as a value and as a "
                                  "group of fields")
        target[leaf] = value  # type: ignore[index]
    return overrides
