"""Herlev's segmentation masks: ``<stem>-d.bmp`` beside each cell image, the nucleus in
light blue (the annotation the nucleus checks of notebook 08 use where it exists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aecnn_utils.data.images import load_image


def is_herlev_mask(p: Path) -> bool:
    """Whether ``p`` is a Herlev segmentation mask (``*-d.bmp``), not a cell image."""
    return p.stem.lower().endswith("-d")


#: Herlev ``*-d.bmp`` segmentation colours (RGB): dark blue background, red cytoplasm,
#: light-blue nucleus (the synthetic generator writes them flat, without anti-aliasing).
HERLEV_MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 128),
    "cytoplasm": (255, 0, 0),
    "nucleus": (0, 128, 255),
}


def herlev_mask_path(path: str | Path) -> Path:
    """Where Herlev keeps the segmentation of a cell image: ``<stem>-d.bmp`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}-d.bmp")


def annotated_nucleus(path: str | Path) -> np.ndarray | None:
    """The nucleus of a Herlev-layout cell from its ``*-d.bmp`` (each pixel the nearest of
    :data:`HERLEV_MASK_COLORS`), at the image's own size; ``None`` where there is no mask."""
    mask_path = herlev_mask_path(path)
    if not mask_path.is_file():
        return None
    rgb = load_image(mask_path).astype(np.float32)
    colours = np.array(list(HERLEV_MASK_COLORS.values()), dtype=np.float32)
    nearest = np.argmin(((rgb[..., None, :] - colours) ** 2).sum(-1), axis=-1)
    return nearest == list(HERLEV_MASK_COLORS).index("nucleus")
