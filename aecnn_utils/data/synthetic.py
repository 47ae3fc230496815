"""Synthetic Pap-smear cell images in the published layouts of SIPaKMeD, Herlev and CRIC Cervix.

**This is not real data.** Every image written here is drawn by a small procedural renderer; no
pixel comes from a patient or from the published datasets, and any number computed on these images
is *not* a result of the paper. A ``SYNTHETIC.txt`` marker is written into every generated dataset
root (see :func:`is_synthetic`) so that readers, notebooks and reports can say so.

Why it exists
    The real datasets need a manual download (and, for some, a registration). The kit's readers,
    trainer and notebooks must still run end to end on a fresh offline machine, and its tests must
    exercise the exact file layouts the readers parse. This module writes small, deterministic image
    sets in those layouts.

What it draws
    Each cell is rendered in optical density (Beer-Lambert): a light, slightly uneven background is
    attenuated by stained cytoplasm and nuclei, so overlapping cells darken each other as they do
    under a microscope. A cell has an irregular closed cytoplasm (a smoothed, jittered polygon for
    mature squamous cells; a perturbed ellipse, a spiky "spider" shape, a tapered column or a
    bizarre shape otherwise) with low-frequency density texture, a denser rim and, for mature
    cells, folds; one or two nuclei with granular or coarse clumped chromatin and a darker nuclear
    membrane; optionally a perinuclear halo (koilocytosis) with a condensed rim. Stains follow the
    Papanicolaou scheme: cyanophilic (blue-green) cytoplasm for intermediate, parabasal,
    metaplastic and most dysplastic cells, eosinophilic (pink) for superficial cells, orangeophilic
    (orange) for keratinised cells (dyskeratocytes, some carcinoma cells), haematoxylin blue-purple
    nuclei. Optics blur and sensor noise are added last. Neighbouring cells may poke in at the
    image edges and a few neutrophils may lie in the background.

    Class morphology follows the cytology (table :data:`MORPHOLOGY`): mature squamous cells are
    large and flat with small pyknotic or vesicular nuclei (low N/C ratio); parabasal, metaplastic
    and columnar cells are smaller with moderate N/C; koilocytes/LSIL/ASC-US have enlarged, mildly
    irregular, sometimes double nuclei and perinuclear halos; dyskeratocytes are small orange cells
    with dense nuclei; moderate/severe dysplasia, ASC-H, HSIL, carcinoma in situ and SCC have a
    rising N/C ratio, irregular nuclear borders, coarse chromatin and hyperchromasia, SCC with
    bizarre cell shapes. The class is learnable from the image; within-class variation is large.

    Each dataset also gets its own rendering style (table :data:`DOMAIN_STYLES`: stain hue,
    saturation and density, background tone, blur, noise and pixel scale), so a cross-dataset
    protocol has a domain gap to show.

Layouts written (what the readers in :mod:`aecnn_utils.data.readers` parse)
    SIPaKMeD
        ``root/im_<Class>/im_<Class>/CROPPED/NNN_MM.bmp``: cell ``MM`` (01..) of cluster image
        ``NNN`` (001..), 2-5 cells per cluster; beside ``CROPPED/``, the cluster images
        ``NNN.bmp`` (256x192) and contour files ``NNN_cytMM.dat`` / ``NNN_nucMM.dat`` (one ``x,y``
        point per line, in cluster-image pixels).
    Herlev
        ``root/<class>/<slide>-<image>-<NNN>.BMP`` (9-digit slide number, the split group, 2-4
        cells per slide; 9-digit image number; 3-digit cell index) and, per cell, the colour-coded
        segmentation ``<same stem>-d.bmp`` (colours: :data:`HERLEV_MASK_COLORS`).
    CRIC Cervix, ``cric_layout="official"``
        ``root/classifications.csv`` (columns :data:`CRIC_CSV_COLUMNS`), the equivalent
        ``root/classifications.json`` and the field images ``root/base/<image_filename>`` (PNG of
        ``field_size``), 3-6 cells of mixed classes per field, some near the border.
    CRIC Cervix, ``cric_layout="cropped"``
        ``root/<Bethesda class>/<image_id>_<cell_id>.png``: 100x100 crops centred on each nucleus
        (shifted to stay inside the field, as the reader's crop box is), cut from the same fields.

Determinism
    The same (dataset, n_per_class, seed, options) gives byte-identical files. Every cell draws
    from its own generator ``np.random.default_rng([seed, dataset_key, class_key, index])``, so a
    cell does not depend on generation order; groupings and field layouts use their own keyed
    generators. Output is written into a temporary sibling folder and renamed into place, so an
    interrupted run never leaves a half-written dataset.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .readers import CRIC_CSV_COLUMNS
from .taxonomy import source_classes

__all__ = [
    "CLASSES",
    "CRIC_CROP_SIZE",
    "CRIC_CSV_COLUMNS",
    "CRIC_LAYOUTS",
    "CRIC_MIN_FIELD_SCALE",
    "DATASETS",
    "DOMAIN_STYLES",
    "GENERATOR_VERSION",
    "HERLEV_MASK_COLORS",
    "MARKER_NAME",
    "MORPHOLOGY",
    "SYNTHETIC_NOTICE",
    "DomainStyle",
    "Morphology",
    "generate_all",
    "generate_dataset",
    "is_synthetic",
    "read_marker",
]

DATASETS: tuple[str, ...] = ("sipakmed", "herlev", "cric")
SYNTHETIC_NOTICE = "synthetic data: these are not the paper's numbers"
GENERATOR_VERSION = "1"
MARKER_NAME = "SYNTHETIC.txt"
CRIC_LAYOUTS: tuple[str, ...] = ("official", "cropped")
CRIC_CROP_SIZE = 100
CRIC_FULL_FIELD: tuple[int, int] = (1376, 1020)
MIN_FIELD_SIDE = 128  # smallest CRIC field side: the 100 px crops must fit
# CRIC cells shrink with fields smaller than the real 1376x1020, but not below this factor (so
# that a 100 px crop of a small test field still shows a cell, not a speck).
CRIC_MIN_FIELD_SCALE = 0.6
SIPAKMED_CLUSTER_SIZE: tuple[int, int] = (256, 192)  # (width, height) of the NNN.bmp images

# Class names and their order come from the taxonomy (one source of truth for the layouts).
CLASSES: dict[str, tuple[str, ...]] = {name: source_classes(name) for name in DATASETS}

# Herlev "-d.bmp" segmentation colours (RGB): dark blue background, red cytoplasm, light-blue
# nucleus. Flat colours, no anti-aliasing.
HERLEV_MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 128),
    "cytoplasm": (255, 0, 0),
    "nucleus": (0, 128, 255),
}

# Stable integer keys for the per-cell random generators (never Python's hash()).
_DATASET_KEY: dict[str, int] = {"sipakmed": 1, "herlev": 2, "cric": 3}
_PURPOSE_GROUPS = 100  # [seed, ds, 100 + class_key, 0]: cluster / slide grouping of a class
_PURPOSE_FIELD = 200  # [seed, ds, 200 + class_key, group]: one cluster or field image
_PURPOSE_CRIC_ASSIGN = 300  # [seed, 3, 300, 0]: which CRIC cells go on which field


# ============================================================================ parameter tables
@dataclass(frozen=True)
class DomainStyle:
    """How one dataset is rendered (its "scanner and staining lab")."""

    hue_shift_deg: float  # rotation of every stain's hue
    saturation: float  # multiplier on stain saturation
    stain_density: float  # multiplier on optical density (darker, more saturated stains > 1)
    background_rgb: tuple[int, int, int]  # empty-glass colour
    blur_sigma: float  # optics blur, pixels
    noise_sigma: float  # sensor noise, grey levels
    px_per_um: float  # pixel scale (the cell-size table is in micrometres)
    margin: float  # single-cell crops: margin around the cell, fraction of its extent
    crop_range: tuple[int, int]  # single-cell crops: min/max side in pixels
    neighbour_p: float  # probability of a neighbouring cell poking in at an edge
    neutrophil_p: float  # probability of background neutrophils


#: Per-dataset rendering table. SIPaKMeD is the reference; Herlev is warmer, paler and softer
#: (older CCD, cells fill more of the image); CRIC is darker, more saturated and bluish, sharper,
#: drawn on large fields (pixel scale relative to the real 1376x1020 fields, shrunk for small ones).
DOMAIN_STYLES: dict[str, DomainStyle] = {
    #                       hue   sat   dens  background        blur noise px/um margin crop
    "sipakmed": DomainStyle(0.0, 1.00, 1.00, (224, 229, 236), 0.8, 2.0, 2.2, 0.14, (70, 160),
                            0.35, 0.20),
    "herlev": DomainStyle(12.0, 0.78, 0.88, (238, 234, 226), 1.3, 3.0, 3.4, 0.04, (80, 200),
                          0.25, 0.10),
    "cric": DomainStyle(-8.0, 1.30, 1.22, (206, 214, 228), 0.6, 2.5, 2.6, 0.0, (100, 100),
                        0.0, 0.30),
}

#: Transmitted colour (RGB, 0-255) of each Papanicolaou stain at optical-density multiplier 1.
_STAINS: dict[str, tuple[int, int, int]] = {
    "cyan": (150, 205, 200),  # cyanophilic, mature intermediate cells
    "cyan_dense": (112, 172, 178),  # cyanophilic, immature / dysplastic cells
    "pink": (246, 158, 172),  # eosinophilic, superficial cells
    "orange": (246, 146, 72),  # orangeophilic, keratinised cells
    "nucleus": (80, 52, 128),  # haematoxylin
}


@dataclass(frozen=True)
class Morphology:
    """Cell archetype: ranges sampled per cell (sizes in micrometres)."""

    cyt_r: tuple[float, float]  # equivalent cytoplasm radius sqrt(area / pi)
    aspect: tuple[float, float]  # cytoplasm long / short axis
    shape: str  # polygon | round | spider | columnar | bizarre
    cyt_irreg: float  # amplitude of low-frequency border irregularity
    palette: tuple[str, ...]  # cytoplasm stains (one drawn per cell)
    cyt_density: tuple[float, float]
    nc: tuple[float, float]  # nucleus radius / cytoplasm radius (N/C area ratio = nc**2)
    nuc_aspect: tuple[float, float]
    nuc_irreg: float  # nuclear border irregularity
    nuc_density: tuple[float, float]  # hyperchromasia
    fine: float  # fine granular chromatin amplitude
    coarse: float  # coarse clumped chromatin amplitude
    halo_p: float = 0.0  # probability of a perinuclear halo
    halo_ratio: tuple[float, float] = (1.8, 2.4)  # halo radius / nucleus radius
    binuc_p: float = 0.0
    nucleoli_p: float = 0.0
    folds: int = 0  # maximum number of cytoplasmic folds


#: Cell archetypes. Datasets map their classes onto mixtures of these (:data:`_CLASS_ARCHETYPES`).
MORPHOLOGY: dict[str, Morphology] = {
    "superficial": Morphology((22, 30), (1.0, 1.5), "polygon", 0.06, ("pink", "pink", "cyan"),
                              (0.55, 0.8), (0.07, 0.10), (1.0, 1.15), 0.02, (1.9, 2.3),
                              0.05, 0.0, folds=2),
    "intermediate": Morphology((18, 25), (1.0, 1.5), "polygon", 0.06, ("cyan",),
                               (0.6, 0.85), (0.14, 0.20), (1.0, 1.25), 0.03, (0.9, 1.1),
                               0.22, 0.1, folds=2),
    "parabasal": Morphology((8, 12), (1.0, 1.3), "round", 0.05, ("cyan_dense",),
                            (0.95, 1.2), (0.34, 0.46), (1.0, 1.25), 0.03, (1.0, 1.2), 0.22, 0.15),
    "metaplastic": Morphology((9, 14), (1.0, 1.5), "spider", 0.10, ("cyan_dense",),
                              (1.05, 1.35), (0.30, 0.42), (1.0, 1.3), 0.04, (1.05, 1.25),
                              0.22, 0.15),
    "columnar": Morphology((7, 10), (2.2, 3.4), "columnar", 0.04, ("cyan",),
                           (0.7, 0.9), (0.28, 0.36), (1.3, 1.7), 0.03, (1.05, 1.25), 0.2, 0.15),
    "koilocyte": Morphology((15, 22), (1.0, 1.5), "polygon", 0.06, ("cyan", "cyan", "pink"),
                            (0.95, 1.25), (0.20, 0.27), (1.0, 1.4), 0.08, (1.3, 1.6), 0.25, 0.35,
                            halo_p=1.0, halo_ratio=(1.9, 2.7), binuc_p=0.3),
    "dyskeratotic": Morphology((7, 12), (1.0, 1.7), "round", 0.10, ("orange",),
                               (1.15, 1.5), (0.18, 0.28), (1.0, 1.3), 0.04, (1.8, 2.3), 0.05, 0.1,
                               binuc_p=0.1),
    "mild": Morphology((15, 21), (1.0, 1.5), "polygon", 0.06, ("cyan", "cyan", "pink"),
                       (0.8, 1.0), (0.26, 0.34), (1.0, 1.35), 0.06, (1.2, 1.45), 0.25, 0.3,
                       halo_p=0.3, binuc_p=0.12),
    "moderate": Morphology((11, 16), (1.0, 1.4), "round", 0.08, ("cyan_dense",),
                           (0.9, 1.15), (0.40, 0.50), (1.0, 1.35), 0.09, (1.4, 1.6), 0.25, 0.5),
    "severe": Morphology((8, 12), (1.0, 1.4), "round", 0.09, ("cyan_dense",),
                         (0.95, 1.2), (0.55, 0.68), (1.0, 1.4), 0.12, (1.55, 1.8), 0.25, 0.7,
                         nucleoli_p=0.2),
    "cis": Morphology((6.5, 9.5), (1.0, 1.4), "round", 0.10, ("cyan_dense",),
                      (1.0, 1.25), (0.70, 0.84), (1.0, 1.45), 0.14, (1.7, 2.0), 0.25, 0.85,
                      nucleoli_p=0.4),
    "ascus": Morphology((15, 22), (1.0, 1.5), "polygon", 0.06, ("cyan", "cyan", "pink"),
                        (0.7, 0.95), (0.20, 0.28), (1.0, 1.3), 0.04, (1.1, 1.3), 0.25, 0.2,
                        halo_p=0.15, halo_ratio=(1.5, 1.9), binuc_p=0.08),
    "asch": Morphology((8, 12), (1.0, 1.35), "round", 0.07, ("cyan_dense",),
                       (0.95, 1.2), (0.45, 0.58), (1.0, 1.35), 0.08, (1.35, 1.6), 0.25, 0.5),
    "hsil": Morphology((7, 10.5), (1.0, 1.45), "round", 0.10, ("cyan_dense",),
                       (1.0, 1.25), (0.60, 0.78), (1.0, 1.45), 0.12, (1.6, 1.9), 0.25, 0.75,
                       nucleoli_p=0.2),
    "scc": Morphology((9, 16), (1.6, 4.0), "bizarre", 0.22, ("orange", "orange", "cyan_dense"),
                      (1.2, 1.6), (0.42, 0.62), (1.1, 1.8), 0.20, (1.9, 2.3), 0.3, 0.9,
                      nucleoli_p=0.5),
    "neutrophil": Morphology((4.0, 5.0), (1.0, 1.2), "round", 0.04, ("cyan",),
                             (0.25, 0.4), (0.2, 0.2), (1.0, 1.0), 0.0, (1.6, 1.9), 0.05, 0.0),
}

#: Each publisher class as a mixture of archetypes ((name, weight), ...), in CLASSES order.
_CLASS_ARCHETYPES: dict[str, tuple[tuple[tuple[str, float], ...], ...]] = {
    "sipakmed": (
        (("dyskeratotic", 1.0),),
        (("koilocyte", 1.0),),
        (("metaplastic", 1.0),),
        (("parabasal", 1.0),),
        (("superficial", 0.5), ("intermediate", 0.5)),
    ),
    "herlev": (
        (("superficial", 1.0),),
        (("intermediate", 1.0),),
        (("columnar", 1.0),),
        (("mild", 1.0),),
        (("moderate", 1.0),),
        (("severe", 1.0),),
        (("cis", 1.0),),
    ),
    "cric": (
        (("superficial", 0.4), ("intermediate", 0.45), ("parabasal", 0.15)),
        (("ascus", 1.0),),
        (("koilocyte", 0.6), ("mild", 0.4)),
        (("asch", 1.0),),
        (("hsil", 1.0),),
        (("scc", 1.0),),
    ),
}

_NEIGHBOUR_ARCHETYPES: tuple[str, ...] = ("intermediate", "superficial", "parabasal")


# ============================================================================ cell geometry
@dataclass(frozen=True)
class _CellSpec:
    """One sampled cell, resolution-independent (contours in micrometres around the centre)."""

    cyt: np.ndarray  # (K, 2) cytoplasm contour
    nuclei: tuple[np.ndarray, ...]  # nucleus contours
    halo: np.ndarray | None  # perinuclear clear zone contour
    folds: tuple[np.ndarray, ...]  # fold polylines
    nucleoli: tuple[tuple[float, float, float], ...]  # (x, y, radius)
    cyt_od: np.ndarray  # (3,) BGR optical density of the cytoplasm stain
    nuc_od: np.ndarray  # (3,) BGR optical density of the nuclear stain
    cyt_density: float
    nuc_density: float
    cyt_texture: float
    cyt_rim: float
    fine: float
    coarse: float
    halo_strength: float
    tex_seed: int
    bound: float = field(init=False)  # bounding radius, micrometres

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound", float(np.hypot(*self.cyt.T).max()))

    @property
    def nucleus_center(self) -> np.ndarray:
        """Centre of the first nucleus (what CRIC annotates), micrometres."""
        return self.nuclei[0].mean(axis=0)


def _harmonics(rng: np.random.Generator, theta: np.ndarray, amp: float, kmin: int, kmax: int,
               decay: float = 1.0) -> np.ndarray:
    """Radial factor 1 + sum of random cosine harmonics (low-frequency border irregularity)."""
    r = np.ones_like(theta)
    for k in range(kmin, kmax + 1):
        a = amp * rng.normal() / k**decay
        r += a * np.cos(k * theta + rng.uniform(0.0, 2 * np.pi))
    return np.clip(r, 0.35, None)


def _area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _resample(pts: np.ndarray, n: int) -> np.ndarray:
    """n points evenly spaced by arc length along a closed polygon."""
    closed = np.vstack([pts, pts[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, cum[-1], n, endpoint=False)
    return np.stack([np.interp(t, cum, closed[:, 0]), np.interp(t, cum, closed[:, 1])], axis=1)


def _chaikin(pts: np.ndarray, iterations: int) -> np.ndarray:
    """Corner cutting: rounds the corners of a closed polygon."""
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.stack([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt], axis=1).reshape(-1, 2)
    return pts


def _normalise(pts: np.ndarray, radius: float) -> np.ndarray:
    """Centre a contour on its centroid and scale it to area pi * radius**2."""
    pts = pts - pts.mean(axis=0)
    return pts * (radius / np.sqrt(max(_area(pts), 1e-9) / np.pi))


def _blob(rng: np.random.Generator, radius: float, aspect: float, irreg: float, kmax: int,
          n: int = 72, decay: float = 1.0) -> np.ndarray:
    """Perturbed ellipse, long axis along x, area pi * radius**2."""
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    r = _harmonics(rng, theta, irreg, 2, kmax, decay)
    s = np.sqrt(aspect)
    pts = np.stack([r * np.cos(theta) * s, r * np.sin(theta) / s], axis=1)
    return _normalise(pts, radius)


def _cyt_shape(rng: np.random.Generator, shape: str, aspect: float, irreg: float) -> np.ndarray:
    """Unit-area-radius cytoplasm contour (long axis along x) for one of the shape families."""
    n = 96
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    s = np.sqrt(aspect)
    if shape == "polygon":
        nv = int(rng.integers(5, 9))
        ang = np.linspace(0.0, 2 * np.pi, nv, endpoint=False) + rng.uniform(0, 2 * np.pi)
        ang = ang + rng.uniform(-0.3, 0.3, nv) * (2 * np.pi / nv)
        rad = 1.0 + rng.normal(0.0, 0.10, nv)
        verts = np.stack([rad * np.cos(ang) * s, rad * np.sin(ang) / s], axis=1)
        pts = _resample(_chaikin(verts, 2), n)
        phi = np.arctan2(pts[:, 1], pts[:, 0])
        pts = pts * _harmonics(rng, phi, irreg * 0.5, 3, 7)[:, None]
    elif shape == "spider":
        r = _harmonics(rng, theta, irreg, 2, 4)
        for _ in range(int(rng.integers(2, 5))):
            c, w = rng.uniform(0, 2 * np.pi), rng.uniform(0.12, 0.28)
            d = np.angle(np.exp(1j * (theta - c)))
            r = r + rng.uniform(0.3, 0.7) * np.exp(-((d / w) ** 2))
        pts = np.stack([r * np.cos(theta) * s, r * np.sin(theta) / s], axis=1)
    elif shape == "columnar":
        r = _harmonics(rng, theta, irreg, 2, 4)
        taper = 0.55 + 0.45 * (1.0 + np.cos(theta)) / 2.0  # narrow at -x (base of the cell)
        pts = np.stack([r * np.cos(theta) * s, r * np.sin(theta) / s * taper], axis=1)
    elif shape == "bizarre":
        r = _harmonics(rng, theta, irreg, 2, 5, decay=0.6)
        for _ in range(int(rng.integers(1, 3))):
            c, w = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.35)
            d = np.angle(np.exp(1j * (theta - c)))
            r = r + rng.uniform(0.4, 1.0) * np.exp(-((d / w) ** 2))
        pts = np.stack([r * np.cos(theta) * s, r * np.sin(theta) / s], axis=1)
    else:  # round
        r = _harmonics(rng, theta, irreg, 2, 4)
        pts = np.stack([r * np.cos(theta) * s, r * np.sin(theta) / s], axis=1)
    return _normalise(pts, 1.0)


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Ray-casting point-in-polygon test, vectorised over points."""
    x, y = pts[:, :1], pts[:, 1:2]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = (x2 - x1) * (y - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1
    return ((straddles & (x < x_cross)).sum(axis=1) % 2) == 1


def _fits(poly: np.ndarray, inner: np.ndarray, grow: float = 1.08) -> bool:
    c = inner.mean(axis=0)
    return bool(_inside(poly, c + grow * (inner - c)).all())


def _shift_stain(rgb: tuple[int, int, int], hue_deg: float, sat: float) -> np.ndarray:
    """Rotate the hue and scale the saturation of a transmitted colour; returns BGR in (0, 1]."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    r, g, b = colorsys.hsv_to_rgb((h + hue_deg / 360.0) % 1.0, min(max(s * sat, 0.0), 1.0), v)
    return np.clip(np.array([b, g, r]), 0.02, 1.0)


def _stain_od(rng: np.random.Generator, name: str, style: DomainStyle) -> np.ndarray:
    t = _shift_stain(_STAINS[name], style.hue_shift_deg + rng.normal(0.0, 4.0),
                     style.saturation * rng.uniform(0.88, 1.12))
    return (-np.log(t) * style.stain_density).astype(np.float32)


def _pick_archetype(rng: np.random.Generator, mixture: tuple[tuple[str, float], ...]) -> str:
    if len(mixture) == 1:
        return mixture[0][0]
    names = [m[0] for m in mixture]
    weights = np.array([m[1] for m in mixture], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _sample_cell(rng: np.random.Generator, archetype: str, style: DomainStyle) -> _CellSpec:
    """Draw one cell of an archetype (geometry in micrometres, colours in the dataset's style)."""
    m = MORPHOLOGY[archetype]
    radius = rng.uniform(*m.cyt_r)
    aspect = rng.uniform(*m.aspect)
    cyt = _cyt_shape(rng, m.shape, aspect, m.cyt_irreg) * radius

    rn = rng.uniform(*m.nc) * radius
    nuc_aspect = rng.uniform(*m.nuc_aspect)
    binuc = rng.random() < m.binuc_p
    if archetype == "neutrophil":  # 3-4 small nuclear lobes
        k = int(rng.integers(3, 5))
        ang = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k
        centres = np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius * 0.36
        lobes = tuple(_blob(rng, 0.95, 1.3, 0.05, 3, n=24) + c for c in centres)
        return _finish_spec(rng, archetype, style, cyt, lobes, None, ())

    long_half = radius * np.sqrt(aspect)
    if m.shape == "columnar":
        centre = np.array([-0.38 * long_half, rng.normal(0.0, 0.05 * radius)])
        nuc_angle = rng.normal(0.0, 0.15)
    else:
        centre = rng.normal(0.0, 0.12 * max(radius - rn, 0.5), 2)
        nuc_angle = rng.uniform(0.0, np.pi)
    rot = _rotation(nuc_angle)
    kmax = 4 + round(m.nuc_irreg * 40)
    if binuc:
        rn_each = rn * 0.82
        sep = rn_each * rng.uniform(0.95, 1.15)
        d = rng.uniform(0, np.pi)
        offsets = [np.array([np.cos(d), np.sin(d)]) * sep * sgn for sgn in (-1.0, 1.0)]
        shapes = [_blob(rng, rn_each, nuc_aspect, m.nuc_irreg, kmax, decay=0.7) @ rot.T
                  for _ in offsets]
    else:
        offsets = [np.zeros(2)]
        shapes = [_blob(rng, rn, nuc_aspect, m.nuc_irreg, kmax, decay=0.7) @ rot.T]

    # Keep the nuclei inside the cytoplasm: pull them towards the centre, then shrink them.
    scale = 1.0
    for attempt in range(12):
        nuclei = [sh * scale + centre + off * scale
                  for sh, off in zip(shapes, offsets, strict=True)]
        if all(_fits(cyt, nuc) for nuc in nuclei):
            break
        centre = centre * 0.6
        if attempt >= 3:
            scale *= 0.92

    halo = None
    if rng.random() < m.halo_p:
        hr = rng.uniform(*m.halo_ratio)
        nuc_c = np.mean([n.mean(axis=0) for n in nuclei], axis=0)
        extra = max(float(np.hypot(*(n.mean(axis=0) - nuc_c))) for n in nuclei)
        base = _blob(rng, 1.0, rng.uniform(1.0, 1.4), 0.10, 5) @ rot.T
        while hr >= 1.3:
            cand = base * (hr * rn * scale + extra) + nuc_c
            if _fits(cyt, cand, grow=1.05):
                halo = cand
                break
            hr *= 0.92

    folds: list[np.ndarray] = []
    for _ in range(int(rng.integers(0, m.folds + 1))):
        start = rng.normal(0.0, 0.35 * radius, 2)
        direction = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.4, 0.9) * radius
        t = np.linspace(-0.5, 0.5, 6)
        bend = rng.normal(0.0, 0.12) * length * (1 - (2 * t) ** 2)
        u = np.array([np.cos(direction), np.sin(direction)])
        v = np.array([-u[1], u[0]])
        folds.append(start + np.outer(t * length, u) + np.outer(bend, v))

    nucleoli: list[tuple[float, float, float]] = []
    if rng.random() < m.nucleoli_p:
        for _ in range(int(rng.integers(1, 3))):
            c = nuclei[0].mean(axis=0) + rng.normal(0.0, 0.25 * rn, 2)
            nucleoli.append((float(c[0]), float(c[1]), float(rng.uniform(0.5, 0.9))))

    # Rotate the whole cell.
    r2 = _rotation(rng.uniform(0, 2 * np.pi))
    cyt = cyt @ r2.T
    nuclei = [n @ r2.T for n in nuclei]
    halo = halo @ r2.T if halo is not None else None
    folds = [f @ r2.T for f in folds]
    nucleoli = [(*(np.array(p[:2]) @ r2.T), p[2]) for p in nucleoli]
    return _finish_spec(rng, archetype, style, cyt, tuple(nuclei), halo, tuple(folds),
                        tuple((float(x), float(y), float(r)) for x, y, r in nucleoli))


def _finish_spec(rng: np.random.Generator, archetype: str, style: DomainStyle, cyt: np.ndarray,
                 nuclei: tuple[np.ndarray, ...], halo: np.ndarray | None,
                 folds: tuple[np.ndarray, ...],
                 nucleoli: tuple[tuple[float, float, float], ...] = ()) -> _CellSpec:
    m = MORPHOLOGY[archetype]
    palette = m.palette[int(rng.integers(len(m.palette)))]
    return _CellSpec(
        cyt=cyt, nuclei=nuclei, halo=halo, folds=folds, nucleoli=nucleoli,
        cyt_od=_stain_od(rng, palette, style), nuc_od=_stain_od(rng, "nucleus", style),
        cyt_density=float(rng.uniform(*m.cyt_density)),
        nuc_density=float(rng.uniform(*m.nuc_density)),
        cyt_texture=float(rng.uniform(0.14, 0.28)), cyt_rim=float(rng.uniform(0.25, 0.6)),
        fine=m.fine, coarse=m.coarse, halo_strength=float(rng.uniform(0.8, 0.92)),
        tex_seed=int(rng.integers(0, 2**62)),
    )


# ============================================================================ rendering
def _poly_mask(pts: np.ndarray, shape: tuple[int, int], aa: bool = True) -> np.ndarray:
    """Filled polygon as a float32 mask in [0, 1] (anti-aliased, sub-pixel accurate)."""
    m = np.zeros(shape, np.uint8)
    poly = np.round(pts * 16.0).astype(np.int32)
    cv2.fillPoly(m, [poly], 255, lineType=cv2.LINE_AA if aa else cv2.LINE_8, shift=4)
    return m.astype(np.float32) * (1.0 / 255.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    n = rng.standard_normal(shape, dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), max(sigma, 0.3))
    return n / (float(n.std()) + 1e-6)


def _edge_profile(mask: np.ndarray, width: float) -> np.ndarray:
    """exp(-distance to the border / width) inside a mask: a rim that is 1 at the border."""
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    return np.exp(-dist / max(width, 0.5))


def _render_cell(od: np.ndarray, spec: _CellSpec, center: Sequence[float], scale: float) -> None:
    """Add one cell's optical density to ``od`` (H x W x 3), centred at ``center`` (pixels)."""
    height, width = od.shape[:2]
    c = np.asarray(center, dtype=np.float64)
    cyt = spec.cyt * scale + c
    x0 = max(int(np.floor(cyt[:, 0].min())) - 2, 0)
    y0 = max(int(np.floor(cyt[:, 1].min())) - 2, 0)
    x1 = min(int(np.ceil(cyt[:, 0].max())) + 3, width)
    y1 = min(int(np.ceil(cyt[:, 1].max())) + 3, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    shape = (y1 - y0, x1 - x0)
    off = np.array([x0, y0], dtype=np.float64)
    rng = np.random.default_rng(spec.tex_seed)

    cm = _poly_mask(cyt - off, shape)
    dens = 1.0 + spec.cyt_texture * _smooth_noise(rng, shape, 2.5 * scale)
    dens += 0.09 * _smooth_noise(rng, shape, 0.6 * scale)  # fine mottling
    dens += spec.cyt_rim * _edge_profile(cm, 1.0 * scale)
    if spec.folds:
        fm = np.zeros(shape, np.uint8)
        for f in spec.folds:
            pts = np.round((f * scale + c - off) * 16.0).astype(np.int32)
            cv2.polylines(fm, [pts], False, 255, max(1, round(0.4 * scale)), cv2.LINE_AA, 4)
        dens += 0.7 * cv2.GaussianBlur(fm.astype(np.float32) / 255.0, (0, 0), 0.6)
    if spec.halo is not None:
        halo = spec.halo * scale + c - off
        hm = cv2.GaussianBlur(_poly_mask(halo, shape), (0, 0), 0.5)
        ring = _poly_mask((halo - halo.mean(axis=0)) * 1.15 + halo.mean(axis=0), shape) - hm
        dens = dens * (1.0 - spec.halo_strength * hm) + 0.6 * np.clip(ring, 0.0, 1.0)
    dens = np.clip(dens, 0.03, None) * (spec.cyt_density * cm)
    local = dens[..., None] * spec.cyt_od

    for nuc in spec.nuclei:
        pts = nuc * scale + c - off
        bx0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
        by0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
        bx1 = min(int(np.ceil(pts[:, 0].max())) + 2, shape[1])
        by1 = min(int(np.ceil(pts[:, 1].max())) + 2, shape[0])
        if bx1 - bx0 < 1 or by1 - by0 < 1:
            continue
        nshape = (by1 - by0, bx1 - bx0)
        npts = pts - np.array([bx0, by0])
        nm = _poly_mask(npts, nshape)
        fine = _smooth_noise(rng, nshape, max(0.45, 0.3 * scale))
        coarse = _smooth_noise(rng, nshape, max(0.8, 0.8 * scale))
        clumps = np.maximum(coarse - 0.4, 0.0)
        nd = 1.0 + spec.fine * fine + spec.coarse * (1.2 * clumps - 0.35)
        nd += 0.35 * _edge_profile(nm, 0.5 * scale)
        for x, y, r in spec.nucleoli:
            p = np.array([x, y]) * scale + c - off - np.array([bx0, by0])
            cv2.circle(nd, (round(p[0] * 16), round(p[1] * 16)), max(1, round(r * scale * 16)),
                       1.9, -1, cv2.LINE_8, 4)
        nd = np.clip(nd, 0.3, None) * (spec.nuc_density * nm)
        local[by0:by1, bx0:bx1] += nd[..., None] * spec.nuc_od
    od[y0:y1, x0:x1] += local


def _background(rng: np.random.Generator, height: int, width: int,
                style: DomainStyle) -> np.ndarray:
    """Empty-glass background (BGR float32, 0-255): tone jitter, uneven lighting, faint haze."""
    tone = np.array(style.background_rgb[::-1], dtype=np.float32) + rng.normal(0.0, 3.0, 3)
    light = rng.normal(0.0, 0.025, (3, 3)).astype(np.float32)
    light = cv2.resize(light, (width, height), interpolation=cv2.INTER_CUBIC)
    haze = _smooth_noise(rng, (height, width), 3.0) * 0.012
    return tone[None, None, :] * (1.0 + light + haze)[..., None]


def _finish_image(rng: np.random.Generator, od: np.ndarray, style: DomainStyle) -> np.ndarray:
    """Background x transmission, optics blur, sensor noise -> BGR uint8."""
    height, width = od.shape[:2]
    img = _background(rng, height, width, style) * np.exp(-od)
    img = cv2.GaussianBlur(img, (0, 0), style.blur_sigma)
    img += rng.standard_normal(img.shape, dtype=np.float32) * style.noise_sigma + 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _extent(pts: np.ndarray) -> tuple[float, float]:
    return float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1]))


def _add_neutrophils(rng: np.random.Generator, od: np.ndarray, style: DomainStyle,
                     scale: float) -> None:
    height, width = od.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        spec = _sample_cell(rng, "neutrophil", style)
        _render_cell(od, spec, (rng.uniform(0, width), rng.uniform(0, height)), scale)


def _render_single(rng: np.random.Generator, spec: _CellSpec, style: DomainStyle,
                   archetype: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A single-cell crop (SIPaKMeD / Herlev style): image, cytoplasm and nucleus contours (px)."""
    lo, hi = style.crop_range
    scale = style.px_per_um
    ex, ey = _extent(spec.cyt)
    grow = 1.0 + 2.0 * style.margin
    if max(ex, ey) * scale * grow > hi - 4:
        scale = (hi - 4) / (max(ex, ey) * grow)
    w = int(np.clip(round(ex * scale * grow + rng.uniform(2, 8)), lo, hi))
    h = int(np.clip(round(ey * scale * grow + rng.uniform(2, 8)), lo, hi))
    bbox_mid = (spec.cyt.max(axis=0) + spec.cyt.min(axis=0)) / 2.0
    slack = np.maximum(np.array([w, h]) - np.array([ex, ey]) * scale - 4, 0) / 2.0
    center = np.array([w, h]) / 2.0 - bbox_mid * scale + rng.uniform(-0.3, 0.3, 2) * slack

    od = np.zeros((h, w, 3), np.float32)
    if rng.random() < style.neutrophil_p:
        _add_neutrophils(rng, od, style, scale)
    if rng.random() < style.neighbour_p:
        name = archetype if rng.random() < 0.4 else _NEIGHBOUR_ARCHETYPES[int(rng.integers(3))]
        other = _sample_cell(rng, name, style)
        side = int(rng.integers(4))
        poke = rng.uniform(0.15, 0.35) * 2 * other.bound * scale  # how far it reaches in
        along = rng.uniform(0.2, 0.8)
        pos = {0: (-other.bound * scale + poke, along * h),
               1: (w + other.bound * scale - poke, along * h),
               2: (along * w, -other.bound * scale + poke),
               3: (along * w, h + other.bound * scale - poke)}[side]
        _render_cell(od, other, pos, scale)
    _render_cell(od, spec, center, scale)
    img = _finish_image(rng, od, style)
    return img, spec.cyt * scale + center, [n * scale + center for n in spec.nuclei]


def _place(rng: np.random.Generator, radii: Sequence[float], nuc_offsets: Sequence[np.ndarray],
           width: int, height: int, border: int | None, inset: float) -> list[np.ndarray]:
    """Cell centres in a field: little overlap, nuclei inside, cell ``border`` near an edge.

    Other cells keep ``inset`` times their bounding radius inside the field where possible.
    """
    centres: list[np.ndarray] = []
    for i, (r, off) in enumerate(zip(radii, nuc_offsets, strict=True)):
        tol = 0.85
        best, best_cost = None, np.inf
        for attempt in range(240):
            if attempt and attempt % 60 == 0:
                tol *= 0.8
            if i == border:
                edge = int(rng.integers(4))
                d = rng.uniform(3, 40)
                t = rng.uniform(0.1, 0.9)
                nuc = {0: (d, t * height), 1: (width - 1 - d, t * height),
                       2: (t * width, d), 3: (t * width, height - 1 - d)}[edge]
                c = np.asarray(nuc, dtype=np.float64) - off
            else:
                mx, my = min(inset * r, width / 2 - 1), min(inset * r, height / 2 - 1)
                c = np.array([rng.uniform(mx, width - mx), rng.uniform(my, height - my)])
            n = c + off
            if not (2 <= n[0] <= width - 3 and 2 <= n[1] <= height - 3):
                continue
            gaps = [np.hypot(*(c - o)) / (r + ro) for o, ro in zip(centres, radii, strict=False)]
            cost = max([0.0, *(1.0 - g for g in gaps)])
            if all(g >= tol for g in gaps):
                best = c
                break
            if cost < best_cost:
                best, best_cost = c, cost
        if best is None:  # nucleus never fitted (tiny field): centre the nucleus
            best = np.array([width / 2, height / 2]) - off
        centres.append(best)
    return centres


def _render_field(rng: np.random.Generator, specs: Sequence[_CellSpec], style: DomainStyle,
                  width: int, height: int, scale: float, border: bool,
                  neutrophils: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A field (CRIC field or SIPaKMeD cluster image) holding ``specs``; returns image, centres."""
    radii = [s.bound * scale for s in specs]
    offsets = [s.nucleus_center * scale for s in specs]
    border_idx = 0 if border and rng.random() < 0.75 else None
    centres = _place(rng, radii, offsets, width, height, border_idx, 0.6 if border else 1.0)
    od = np.zeros((height, width, 3), np.float32)
    if neutrophils and rng.random() < style.neutrophil_p:
        _add_neutrophils(rng, od, style, scale)
    for spec, c in zip(specs, centres, strict=True):
        _render_cell(od, spec, c, scale)
    return _finish_image(rng, od, style), centres


# ============================================================================ file writing
def _encode(path: Path, img: np.ndarray) -> None:
    """Write a BGR image; the format follows the suffix (any case), bytes are deterministic."""
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if ext == ".png" else []  # noisy: 1 is as good
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def _write_contour(path: Path, pts: np.ndarray) -> None:
    path.write_text("".join(f"{x:.2f},{y:.2f}\n" for x, y in pts), encoding="ascii")


def _partition(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    """Sizes in [lo, hi] summing to n (a single smaller group only when n < lo)."""
    sizes: list[int] = []
    remaining = n
    while remaining > 0:
        s = min(int(rng.integers(lo, hi + 1)), remaining)
        if 0 < remaining - s < lo:
            s = remaining if remaining <= hi else remaining - lo
        sizes.append(s)
        remaining -= s
    return sizes


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _cell(seed: int, dataset: str, class_key: int, index: int) -> tuple[np.random.Generator,
                                                                         _CellSpec, str]:
    """The generator, spec and archetype of one cell (independent of generation order)."""
    rng = _rng(seed, _DATASET_KEY[dataset], class_key, index)
    archetype = _pick_archetype(rng, _CLASS_ARCHETYPES[dataset][class_key])
    return rng, _sample_cell(rng, archetype, DOMAIN_STYLES[dataset]), archetype


def _write_sipakmed(root: Path, n: int, seed: int) -> None:
    style = DOMAIN_STYLES["sipakmed"]
    cw, ch = SIPAKMED_CLUSTER_SIZE
    for ck, cls in enumerate(CLASSES["sipakmed"]):
        folder = root / f"im_{cls}" / f"im_{cls}"
        cropped = folder / "CROPPED"
        cropped.mkdir(parents=True)
        sizes = _partition(_rng(seed, 1, _PURPOSE_GROUPS + ck, 0), n, 2, 5)
        index = 0
        for g, size in enumerate(sizes):
            cells = [_cell(seed, "sipakmed", ck, index + j) for j in range(size)]
            index += size
            for j, (rng, spec, arch) in enumerate(cells):
                img, _, _ = _render_single(rng, spec, style, arch)
                _encode(cropped / f"{g + 1:03d}_{j + 1:02d}.bmp", img)
            # The cluster image: the same cells, smaller, on one field.
            frng = _rng(seed, 1, _PURPOSE_FIELD + ck, g)
            specs = [c[1] for c in cells]
            area = sum(np.pi * s.bound**2 for s in specs)
            scale = min(style.px_per_um, float(np.sqrt(0.3 * cw * ch / area)))
            field_img, centres = _render_field(frng, specs, style, cw, ch, scale, False, True)
            _encode(folder / f"{g + 1:03d}.bmp", field_img)
            for j, (spec, c) in enumerate(zip(specs, centres, strict=True)):
                _write_contour(folder / f"{g + 1:03d}_cyt{j + 1:02d}.dat", spec.cyt * scale + c)
                _write_contour(folder / f"{g + 1:03d}_nuc{j + 1:02d}.dat",
                               spec.nuclei[0] * scale + c)


def _herlev_mask(shape: tuple[int, int], cyt: np.ndarray, nuclei: list[np.ndarray]) -> np.ndarray:
    def bgr(name: str) -> tuple[int, int, int]:
        r, g, b = HERLEV_MASK_COLORS[name]
        return (b, g, r)

    mask = np.empty((*shape, 3), np.uint8)
    mask[:] = bgr("background")
    cv2.fillPoly(mask, [np.round(cyt).astype(np.int32)], bgr("cytoplasm"), cv2.LINE_8)
    for nuc in nuclei:
        cv2.fillPoly(mask, [np.round(nuc).astype(np.int32)], bgr("nucleus"), cv2.LINE_8)
    return mask


def _write_herlev(root: Path, n: int, seed: int) -> None:
    style = DOMAIN_STYLES["herlev"]
    for ck, cls in enumerate(CLASSES["herlev"]):
        folder = root / cls
        folder.mkdir(parents=True)
        sizes = _partition(_rng(seed, 2, _PURPOSE_GROUPS + ck, 0), n, 2, 4)
        index = 0
        for g, size in enumerate(sizes):
            slide = 149_100_000 + ck * 1_000_000 + g * 20
            for j in range(size):
                rng, spec, arch = _cell(seed, "herlev", ck, index)
                index += 1
                img, cyt, nuclei = _render_single(rng, spec, style, arch)
                stem = f"{slide:09d}-{slide + 2 + 3 * (j // 2):09d}-{j + 1:03d}"
                _encode(folder / f"{stem}.BMP", img)
                _encode(folder / f"{stem}-d.bmp", _herlev_mask(img.shape[:2], cyt, nuclei))


@dataclass(frozen=True)
class _CricCell:
    class_key: int
    index: int
    cell_id: int
    nucleus: tuple[int, int]


def _cric_fields(seed: int, n: int, width: int,
                 height: int) -> Iterator[tuple[int, np.ndarray, list[_CricCell]]]:
    """Yield (image_id, field image, [_CricCell, ...]) for every CRIC field."""
    style = DOMAIN_STYLES["cric"]
    shrink = min(width / CRIC_FULL_FIELD[0], height / CRIC_FULL_FIELD[1])
    scale = style.px_per_um * float(np.clip(shrink, CRIC_MIN_FIELD_SCALE, 1.0))
    keys = [(ck, i) for ck in range(len(CLASSES["cric"])) for i in range(n)]
    arng = _rng(seed, 3, _PURPOSE_CRIC_ASSIGN, 0)
    order = [keys[k] for k in arng.permutation(len(keys))]
    sizes = _partition(arng, len(order), 3, 6)
    start, cell_id = 0, 1
    for f, size in enumerate(sizes):
        members = order[start:start + size]
        start += size
        specs = [_cell(seed, "cric", ck, i)[1] for ck, i in members]
        frng = _rng(seed, 3, _PURPOSE_FIELD, f)
        img, centres = _render_field(frng, specs, style, width, height, scale, True, True)
        cells = []
        for (ck, i), spec, c in zip(members, specs, centres, strict=True):
            nx, ny = spec.nucleus_center * scale + c
            nucleus = (int(np.clip(round(nx), 0, width - 1)),
                       int(np.clip(round(ny), 0, height - 1)))
            cells.append(_CricCell(ck, i, cell_id, nucleus))
            cell_id += 1
        yield f + 1, img, cells


def _cric_filename(seed: int, image_id: int) -> str:
    digest = hashlib.sha256(f"aecnn-synthetic-cric/{seed}/{image_id}".encode()).hexdigest()
    return digest[:32] + ".png"


def _crop_window(c: int, extent: int, size: int) -> tuple[int, int]:
    if extent <= size:
        return 0, extent
    lo = min(max(c - size // 2, 0), extent - size)
    return lo, lo + size


def _write_cric(root: Path, n: int, seed: int, layout: str, field_size: tuple[int, int]) -> None:
    width, height = field_size
    rows: list[dict] = []
    images: list[dict] = []
    if layout == "official":
        (root / "base").mkdir(parents=True)
    else:
        for cls in CLASSES["cric"]:
            (root / cls).mkdir(parents=True)
    for image_id, img, cells in _cric_fields(seed, n, width, height):
        name = _cric_filename(seed, image_id)
        doi = f"10.0000/synthetic.cric.{seed}.{image_id:05d}"
        entries = []
        for cell in cells:
            cls = CLASSES["cric"][cell.class_key]
            if layout == "official":
                rows.append({"image_id": image_id, "image_filename": name, "image_doi": doi,
                             "cell_id": cell.cell_id, "bethesda_system": cls,
                             "nucleus_x": cell.nucleus[0], "nucleus_y": cell.nucleus[1]})
                entries.append({"cell_id": cell.cell_id, "bethesda_system": cls,
                                "nucleus_x": cell.nucleus[0], "nucleus_y": cell.nucleus[1]})
            else:
                x0, x1 = _crop_window(cell.nucleus[0], width, CRIC_CROP_SIZE)
                y0, y1 = _crop_window(cell.nucleus[1], height, CRIC_CROP_SIZE)
                _encode(root / cls / f"{image_id}_{cell.cell_id}.png", img[y0:y1, x0:x1])
        if layout == "official":
            _encode(root / "base" / name, img)
            images.append({"image_id": image_id, "image_name": name, "image_doi": doi,
                           "classifications": entries})
    if layout == "official":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(CRIC_CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (root / "classifications.csv").write_text(buf.getvalue(), encoding="utf-8")
        (root / "classifications.json").write_text(json.dumps(images, indent=2) + "\n",
                                                   encoding="utf-8")


# ============================================================================ marker & API
def _marker_fields(name: str, n_per_class: int, seed: int, cric_layout: str,
                   field_size: tuple[int, int]) -> dict[str, str]:
    fields = {
        "generator": "aecnn_utils.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "dataset": name,
        "seed": str(seed),
        "n_per_class": str(n_per_class),
    }
    if name == "cric":
        fields["cric_layout"] = cric_layout
        fields["field_size"] = f"{field_size[0]}x{field_size[1]}"
    return fields


def read_marker(root: str | Path) -> dict[str, str] | None:
    """The ``key: value`` fields of a dataset root's ``SYNTHETIC.txt``, or None if it has none."""
    path = Path(root) / MARKER_NAME
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != SYNTHETIC_NOTICE:
        return None
    fields = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def is_synthetic(root: str | Path) -> bool:
    """True if ``root`` holds a dataset written by this generator (it has the SYNTHETIC marker)."""
    return read_marker(root) is not None


def _validate(name: str, n_per_class: int, seed: int, cric_layout: str,
              field_size: tuple[int, int]) -> tuple[str, int, int, tuple[int, int]]:
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)):
        raise ValueError(f"n_per_class must be an integer >= 1, got {n_per_class!r}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if cric_layout not in CRIC_LAYOUTS:
        raise ValueError(f"unknown cric_layout {cric_layout!r}; valid layouts: "
                         f"{', '.join(CRIC_LAYOUTS)}")
    try:
        w, h = (int(v) for v in field_size)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"field_size must be (width, height), got {field_size!r}") from exc
    if (w, h) != tuple(field_size) or min(w, h) < MIN_FIELD_SIDE:
        raise ValueError(f"field_size must be two integers >= {MIN_FIELD_SIDE} (width, height), "
                         f"got {field_size!r}")
    return name.lower(), int(n_per_class), int(seed), (w, h)


def generate_dataset(name: str, root: str | Path, n_per_class: int = 20, seed: int = 0,
                     *, cric_layout: str = "official",
                     field_size: tuple[int, int] = CRIC_FULL_FIELD,
                     overwrite: bool = False) -> Path:
    """Write one synthetic dataset under ``root`` (the dataset's own root folder) and return root.

    Args:
        name: ``sipakmed``, ``herlev`` or ``cric``.
        root: the dataset root to create (as the real dataset would be unpacked there).
        n_per_class: cells per publisher class (CRIC: in total over all fields).
        seed: non-negative integer; the same arguments give byte-identical files.
        cric_layout: ``official`` (CSV/JSON + field images) or ``cropped`` (class folders of
            100x100 crops). Ignored for the other datasets.
        field_size: CRIC field image size (width, height); the real fields are 1376x1020.
            Ignored for the other datasets.
        overwrite: replace an existing *synthetic* dataset written with other parameters.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: unknown dataset or layout, ``n_per_class < 1``, bad seed or field size.
        FileExistsError: ``root`` is non-empty and is not a synthetic dataset with the same
            parameters (and ``overwrite`` is false), or it lacks the ``SYNTHETIC.txt`` marker (it
            may hold real data: it is never deleted), or it is a file.
    """
    name, n_per_class, seed, field_size = _validate(name, n_per_class, seed, cric_layout,
                                                    field_size)
    root = Path(root)
    wanted = _marker_fields(name, n_per_class, seed, cric_layout, field_size)
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a folder; choose another root")
        if any(root.iterdir()):
            marker = read_marker(root)
            if marker == wanted:
                return root
            if marker is None:
                raise FileExistsError(
                    f"{root} is not empty and has no {MARKER_NAME} marker, so it may hold real "
                    "data; refusing to touch it. Choose an empty or new folder for synthetic data.")
            if not overwrite:
                raise FileExistsError(
                    f"{root} holds synthetic data written with other parameters ({marker}); pass "
                    "overwrite=True to regenerate it, or choose another folder.")

    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if name == "sipakmed":
            _write_sipakmed(tmp, n_per_class, seed)
        elif name == "herlev":
            _write_herlev(tmp, n_per_class, seed)
        else:
            _write_cric(tmp, n_per_class, seed, cric_layout, field_size)
        # The marker goes in last: a root with a marker is always complete.
        text = SYNTHETIC_NOTICE + "\n" + "".join(f"{k}: {v}\n" for k, v in wanted.items())
        (tmp / MARKER_NAME).write_text(text, encoding="utf-8")
        _move_into_place(tmp, root, wanted)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _move_into_place(tmp: Path, root: Path, wanted: dict[str, str]) -> None:
    """Rename the finished ``tmp`` folder to ``root``, replacing an empty or synthetic ``root``."""
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process finished the same dataset first: keep theirs if it matches.
            if read_marker(root) != wanted:
                raise
        return
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.replace(root, old)  # only reached for a marked synthetic root (checked by the caller)
    try:
        os.replace(tmp, root)
    except OSError:
        os.replace(old, root)
        raise
    shutil.rmtree(old, ignore_errors=True)


def generate_all(root: str | Path, n_per_class: int = 20, seed: int = 0,
                 **kwargs) -> dict[str, Path]:
    """Write ``root/sipakmed``, ``root/herlev`` and ``root/cric``; return ``{name: path}``.

    ``kwargs`` (``cric_layout``, ``field_size``, ``overwrite``) are passed to
    :func:`generate_dataset`.
    """
    root = Path(root)
    return {name: generate_dataset(name, root / name, n_per_class, seed, **kwargs)
            for name in DATASETS}
