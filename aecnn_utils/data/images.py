"""Decoding one cell image into an RGB ``uint8`` array, whatever the file holds.

Real collections mix formats: SIPaKMeD ships BMP, Herlev BMP (and JPEG copies circulate), CRIC
PNG. Some files are greyscale, palette, RGBA or 16-bit. :func:`load_image` converts all of them to
``H x W x 3`` RGB ``uint8`` and turns every decoding failure into a :class:`CorruptImageError`
that names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from aecnn_utils.data.errors import CorruptImageError, DatasetNotFoundError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff"})

_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def is_image_file(path: Path) -> bool:
    """True for a file whose suffix is a supported image format (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _high_bit_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit / 32-bit single-channel image linearly to 0..255."""
    arr = arr.astype(np.float64)
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F":
        top = float(arr.max()) if arr.size and arr.max() > 1.0 else 1.0
    else:  # "I": 32-bit integers, in practice 16-bit data promoted by Pillow
        top = 65535.0 if arr.max() > 255 else 255.0
    return np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as an ``H x W x 3`` RGB ``uint8`` array.

    Greyscale is replicated to three channels, palette images are expanded, alpha is composited
    onto white (the slide background), 16-bit data is scaled linearly to 8 bits.

    Raises:
        DatasetNotFoundError: the file does not exist.
        CorruptImageError: the file is truncated, not an image, or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode: truncated files fail here, not later
            mode = im.mode
            if mode in _HIGH_BIT_MODES:
                rgb = np.repeat(_high_bit_to_uint8(np.asarray(im), mode)[..., None], 3, axis=2)
            else:
                if mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif mode in ("LA", "PA"):
                    im = im.convert("RGBA")
                if im.mode == "RGBA":
                    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(background, im)
                rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(
            f"cannot decode image {path}: {exc}. Replace the file with a good copy from the "
            "dataset's original archive, or delete it (or pass on_error='warn' to skip it)."
        ) from exc
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise CorruptImageError(f"image {path} has no pixels (shape {rgb.shape})")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image read from its header only (cheap)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise CorruptImageError(f"cannot read image header of {path}: {exc}") from exc
