"""The kit's configuration error, raised wherever a parameter cannot work."""

from __future__ import annotations


class ConfigError(ValueError):
    """A run configuration that cannot work; the message names the field and the fix."""
