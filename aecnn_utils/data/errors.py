"""Exceptions raised on bad data, each naming the offending file or folder and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Base class for every data-layer error of the kit."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset root (or a file it refers to) does not exist."""


class LayoutError(DataError):
    """A dataset root exists but is not laid out the way its publisher distributes it."""


class LabelError(DataError):
    """A class name is not in the label taxonomy, or a label set is inconsistent."""


class CorruptImageError(DataError):
    """An image file cannot be decoded (truncated, not an image, unsupported mode)."""


class DataWarning(UserWarning):
    """Something odd but recoverable in a dataset (empty class folder, skipped image, ...)."""
