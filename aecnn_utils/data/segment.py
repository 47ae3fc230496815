"""A simple cell and nucleus segmentation, the scale harmonisation built on it, nucleus features.

Pap-stained nuclei take up haematoxylin; the cytoplasm takes the counterstains (eosin, light
green, orange G). The segmentation therefore works in optical density (Beer-Lambert): the cell
is what absorbs light at all (three-class Otsu on the total optical density), the nucleus the
largest dark blob inside the cell (Otsu on the mean optical density within the cell mask). It is
deliberately simple (no learning, no labels), so that it behaves the same on every dataset; the
synthetic generator's nucleus masks test it, and notebook 05 shows it on real cells.

Scale harmonisation (``resize_mode`` ``cell`` / ``nucleus``) crops every cell to a fixed extent of
the cell or of its nucleus before resizing. SIPaKMeD's crop size depends on the class, and Herlev
was resized by a third party: with ``pad`` the zoom factor is a label shortcut that does not
transfer. Cropping to a multiple of the nucleus diameter shows every nucleus at one size, so that
the nucleus-to-cytoplasm ratio (how much cytoplasm fits in the frame) survives.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Stain vectors (rows: haematoxylin, eosin, DAB) in RGB optical density, Ruifrok & Johnston
#: (2001), as in scikit-image's ``rgb2hed``; its inverse maps optical density to stain amounts.
RGB_FROM_HED: np.ndarray = np.array([[0.65, 0.70, 0.29],
                                     [0.07, 0.99, 0.11],
                                     [0.27, 0.57, 0.78]])
HED_FROM_RGB: np.ndarray = np.linalg.inv(RGB_FROM_HED)

#: Version of :func:`segment`'s output. Caches, features and run ids that depend on it carry it,
#: so a changed segmentation never reuses results of the old one (2: padding bars excluded).
SEGMENTATION_VERSION = 2
#: The ``resize_mode`` values that segment each cell (:func:`harmonise`).
SEGMENTED_MODES: tuple[str, ...] = ("cell", "nucleus")
#: ``nucleus`` harmonisation: the square window is this many nucleus diameters wide.
NUCLEUS_FIELD = 4.0
#: ``nucleus`` harmonisation never zooms in further than this fraction of the crop's shorter
#: side (a guard against a failed segmentation that found a speck).
MIN_WINDOW = 0.25
#: A nucleus candidate less solid than this is thresholded again (see :func:`segment`).
RAGGED = 0.6
#: ``cell`` harmonisation: margin around the cell's bounding box, as a fraction of its side.
CELL_MARGIN = 0.1


def optical_density(image: np.ndarray) -> np.ndarray:
    """Per-channel optical density ``-ln(I / 255)`` of an RGB ``uint8`` image (float32)."""
    return -np.log(np.maximum(image.astype(np.float32), 1.0) / 255.0)


def haematoxylin(image: np.ndarray) -> np.ndarray:
    """The haematoxylin amount of each pixel (colour deconvolution, clipped at 0; float32)."""
    od = optical_density(image)
    return np.maximum(od @ HED_FROM_RGB[:, 0].astype(np.float32), 0.0)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of a 1-D float array (256 bins between its min and max)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        return hi
    scaled = np.round((values - lo) / (hi - lo) * 255).astype(np.uint8)
    t, _ = cv2.threshold(scaled.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return lo + (t + 0.5) / 255.0 * (hi - lo)


def _otsu3_low(values: np.ndarray, bins: int = 64) -> float:
    """The lower of the two thresholds of a three-class Otsu (background | cytoplasm | nucleus)
    of a 1-D float array: it separates the background from everything stained."""
    hist, edges = np.histogram(values, bins=bins)
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w, m = np.cumsum(p)[:-1], np.cumsum(p * centres)[:-1]  # classes end at bin i (< j)
    i, j = np.triu_indices(bins - 1, k=1)
    ws = np.stack([w[i], w[j] - w[i], 1 - w[j]])
    ms = np.stack([m[i], m[j] - m[i], m[-1] + p[-1] * centres[-1] - m[j]])
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where((ws > 0).all(axis=0), (ms * ms / ws).sum(axis=0), -1.0)
    if not (score > -1).any():
        return float(edges[bins // 3])
    return float(edges[i[np.argmax(score)] + 1])


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _central_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of ``mask``, components near the centre preferred.

    A component's score is its area times a weight that falls from 1 at the image centre to 0.25
    at the corners, and times 0.05 when it touches the crop's edge: a neighbouring cell cut by
    the edge rarely wins.
    """
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if n <= 1:
        return mask.astype(bool)
    h, w = mask.shape
    s = stats[1:]
    dist = np.hypot(centroids[1:, 0] - w / 2, centroids[1:, 1] - h / 2) / (np.hypot(h, w) / 2)
    edge = ((s[:, cv2.CC_STAT_LEFT] == 0) | (s[:, cv2.CC_STAT_TOP] == 0)
            | (s[:, cv2.CC_STAT_LEFT] + s[:, cv2.CC_STAT_WIDTH] == w)
            | (s[:, cv2.CC_STAT_TOP] + s[:, cv2.CC_STAT_HEIGHT] == h))
    score = s[:, cv2.CC_STAT_AREA] * (1.0 - 0.75 * np.clip(dist, 0, 1)) * np.where(edge, 0.05, 1.0)
    return labels == 1 + int(np.argmax(score))


def _solidity(mask: np.ndarray) -> float:
    """Area over convex-hull area of the largest contour of ``mask`` (1 for a convex blob)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    return float(cv2.contourArea(contour)) / max(float(cv2.contourArea(cv2.convexHull(contour))),
                                                 1.0)


@dataclass(frozen=True)
class Segmentation:
    """Boolean masks of the cell (including its nucleus) and of the nucleus."""

    cell: np.ndarray
    nucleus: np.ndarray

    @property
    def nucleus_diameter(self) -> float:
        """Equivalent-circle diameter of the nucleus, in pixels."""
        return float(2.0 * np.sqrt(self.nucleus.sum() / np.pi))


def content_box(image: np.ndarray, tol: float = 4.0) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of ``image`` inside padding bars: edge rows or columns of one flat
    colour (each within ``tol`` grey levels of it), at least 2 pixels thick, plus 1 pixel of JPEG
    ringing. Herlev's shared copies were padded to a square this way; a crop without bars is
    returned whole."""
    h, w = image.shape[:2]
    img = image.astype(np.float32)

    def bar(lines: np.ndarray) -> int:  # lines: (n, length, 3), outermost first
        ref = np.median(lines[0], axis=0)
        flat = (np.abs(lines - ref).max(axis=(1, 2)) <= tol).tolist()
        k = flat.index(False) if False in flat else len(flat)
        return k + 1 if k >= 2 else 0

    top, bottom = bar(img[: h // 2]), bar(img[::-1][: h // 2])
    left = bar(img[:, : w // 2].transpose(1, 0, 2))
    right = bar(img[:, ::-1][:, : w // 2].transpose(1, 0, 2))
    return top, h - bottom, left, w - right


def segment(image: np.ndarray) -> Segmentation:
    """Cell and nucleus masks of a single-cell RGB ``uint8`` crop, found inside its padding
    bars (:func:`content_box`; the bars are never cell). See :func:`_segment` for the method."""
    h, w = image.shape[:2]
    y0, y1, x0, x1 = content_box(image)
    if (y0, y1, x0, x1) == (0, h, 0, w) or y1 - y0 < 8 or x1 - x0 < 8:
        return _segment(image)
    inner = _segment(image[y0:y1, x0:x1])
    cell, nucleus = np.zeros((h, w), bool), np.zeros((h, w), bool)
    cell[y0:y1, x0:x1], nucleus[y0:y1, x0:x1] = inner.cell, inner.nucleus
    return Segmentation(cell, nucleus)


def _segment(image: np.ndarray) -> Segmentation:
    """Cell and nucleus masks of a single-cell RGB ``uint8`` crop.

    Cell: the lower threshold of a three-class Otsu (background, cytoplasm, nucleus) on the
    smoothed total optical density, holes filled, the central component (the whole crop when
    the crop has no background). Nucleus: Otsu on the smoothed darkness (mean optical density)
    inside the cell, closed (chromatin clumps merge) and opened, the central component, holes
    filled; while that blob is ragged (solidity below :data:`RAGGED`) it is cytoplasm with the
    nucleus inside, and Otsu is applied again within it (at most 3 times). Never empty: a crop
    without contrast gets a small central disc.

    Darkness rather than the haematoxylin channel: Ruifrok's H&E vectors do not fit the Pap
    stain, and on the shared SIPaKMeD and Herlev cells the H channel picked cytoplasm (orange G,
    light green) more often than darkness did.
    """
    h, w = image.shape[:2]
    od = optical_density(image)
    total = cv2.GaussianBlur(od.sum(axis=2), (0, 0), max(0.5, min(h, w) / 100))
    cell = total > _otsu3_low(total)
    if cell.mean() < 0.97:
        cell = _fill_holes(_central_component(cell))
    if cell.sum() < 0.02 * h * w:
        cell = np.ones((h, w), bool)
    dark = cv2.GaussianBlur(od.mean(axis=2), (0, 0), max(0.5, min(h, w) / 60))
    k = max(1, round(min(h, w) / 60))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    region, nucleus = cell, np.zeros((h, w), bool)
    for _ in range(3):  # a ragged blob is cytoplasm with the nucleus inside: threshold again
        blob = (region & (dark > _otsu(dark[region]))).astype(np.uint8)
        blob = cv2.morphologyEx(cv2.morphologyEx(blob, cv2.MORPH_CLOSE, disc),
                                cv2.MORPH_OPEN, disc).astype(bool)
        if not blob.any():
            break
        nucleus = _fill_holes(_central_component(blob))
        if _solidity(nucleus) >= RAGGED or nucleus.sum() < 0.01 * cell.sum():
            break
        region = nucleus
    if not nucleus.any():
        yy, xx = np.ogrid[:h, :w]
        nucleus = np.hypot(yy - h / 2, xx - w / 2) <= max(2.0, min(h, w) / 20)
    return Segmentation(cell | nucleus, nucleus)


def _square_window(image: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """The ``side`` x ``side`` window of ``image`` centred at (cx, cy); outside is filled with the
    median border colour (the slide background)."""
    side = max(8, int(round(side)))
    h, w = image.shape[:2]
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = np.median(border, axis=0).astype(np.uint8)
    out = np.empty((side, side, 3), np.uint8)
    out[:] = fill
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def harmonise(image: np.ndarray, mode: str, seg: Segmentation | None = None) -> np.ndarray:
    """Crop ``image`` to a fixed extent of its cell (``cell``) or nucleus (``nucleus``).

    ``cell``: the square around the cell's bounding box plus :data:`CELL_MARGIN`. ``nucleus``: the
    square of :data:`NUCLEUS_FIELD` nucleus diameters centred on the nucleus (at least
    :data:`MIN_WINDOW` of the crop's shorter side). The result is
    square; resize it to the model's size afterwards.
    """
    seg = seg or segment(image)
    if mode == "cell":
        ys, xs = np.nonzero(seg.cell)
        side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * (1 + 2 * CELL_MARGIN)
        return _square_window(image, (xs.min() + xs.max() + 1) / 2,
                              (ys.min() + ys.max() + 1) / 2, side)
    if mode == "nucleus":
        ys, xs = np.nonzero(seg.nucleus)
        side = max(NUCLEUS_FIELD * seg.nucleus_diameter, MIN_WINDOW * min(image.shape[:2]))
        return _square_window(image, xs.mean() + 0.5, ys.mean() + 0.5, side)
    raise ValueError(f"unknown harmonisation {mode!r}; choose cell or nucleus")


#: The nucleus features of :func:`nucleus_features`, in order. None depends on the pixel size.
NUCLEUS_FEATURES: tuple[str, ...] = (
    "nucleus_fraction", "nc_ratio", "irregularity", "circularity", "darkness", "chromatin")


def nucleus_features(image: np.ndarray, seg: Segmentation | None = None) -> dict[str, float]:
    """Scale-free morphology of the nucleus: what a cytologist reads, as numbers.

    - ``nucleus_fraction``: nucleus area / cell area; ``nc_ratio``: nucleus / cytoplasm area;
    - ``irregularity``: 1 - solidity (area / convex-hull area) of the nucleus contour;
    - ``circularity``: 4 pi area / perimeter^2 (1 for a disc);
    - ``darkness``: mean haematoxylin in the nucleus; ``chromatin``: its standard deviation
      relative to the mean (coarse, clumped chromatin is uneven).

    No hue: the stain's colour differs between laboratories, and this is a morphology
    reference.
    """
    seg = seg or segment(image)
    nuc = seg.nucleus.astype(np.uint8)
    area_n, area_c = float(nuc.sum()), float(seg.cell.sum())
    contours, _ = cv2.findContours(nuc, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    hull = float(cv2.contourArea(cv2.convexHull(contour)))
    perimeter = float(cv2.arcLength(contour, True))
    hem = haematoxylin(image)[seg.nucleus]
    return {
        "nucleus_fraction": area_n / max(area_c, 1.0),
        "nc_ratio": area_n / max(area_c - area_n, 1.0),
        "irregularity": 1.0 - min(1.0, float(cv2.contourArea(contour)) / max(hull, 1.0)),
        "circularity": min(1.0, 4 * np.pi * area_n / max(perimeter, 1.0) ** 2),
        "darkness": float(hem.mean()),
        "chromatin": float(hem.std() / max(hem.mean(), 1e-6)),
    }
