"""One synthetic cell as geometry and stains, before any pixel is drawn.

:func:`sample_cell` draws a cell of a :data:`~.styles.MORPHOLOGY` archetype in a dataset's
:class:`~.styles.DomainStyle`: cytoplasm and nucleus contours in micrometres around the cell
centre, an optional perinuclear halo, folds and nucleoli, and the optical densities of its stains.
:mod:`.render` turns such a :class:`CellSpec` into pixels.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from aecnn_utils.data.synthetic.styles import STAINS, MORPHOLOGY, DomainStyle


class _Nucleolus(NamedTuple):
    """A nucleolus: centre and radius in micrometres, relative to the cell centre."""

    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class CellSpec:
    """One sampled cell, resolution-independent (contours in micrometres around the centre)."""

    cyt: np.ndarray  # (K, 2) cytoplasm contour
    nuclei: tuple[np.ndarray, ...]  # nucleus contours
    halo: np.ndarray | None  # perinuclear clear zone contour
    folds: tuple[np.ndarray, ...]  # fold polylines
    nucleoli: tuple[_Nucleolus, ...]
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
    t = _shift_stain(STAINS[name], style.hue_shift_deg + rng.normal(0.0, 4.0),
                     style.saturation * rng.uniform(0.88, 1.12))
    return (-np.log(t) * style.stain_density).astype(np.float32)


def pick_archetype(rng: np.random.Generator, mixture: dict[str, float]) -> str:
    """One archetype of a ``{archetype: weight}`` mixture (no draw when there is only one)."""
    names = list(mixture)
    if len(names) == 1:
        return names[0]
    weights = np.array(list(mixture.values()), dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def sample_cell(rng: np.random.Generator, archetype: str, style: DomainStyle) -> CellSpec:
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

    nucleoli: list[_Nucleolus] = []
    if rng.random() < m.nucleoli_p:
        for _ in range(int(rng.integers(1, 3))):
            c = nuclei[0].mean(axis=0) + rng.normal(0.0, 0.25 * rn, 2)
            nucleoli.append(_Nucleolus(float(c[0]), float(c[1]), float(rng.uniform(0.5, 0.9))))

    # Rotate the whole cell.
    r2 = _rotation(rng.uniform(0, 2 * np.pi))
    cyt = cyt @ r2.T
    nuclei = [n @ r2.T for n in nuclei]
    halo = halo @ r2.T if halo is not None else None
    folds = [f @ r2.T for f in folds]
    rotated = [np.array([p.x, p.y]) @ r2.T for p in nucleoli]
    nucleoli = [_Nucleolus(float(c[0]), float(c[1]), p.radius)
                for c, p in zip(rotated, nucleoli, strict=True)]
    return _finish_spec(rng, archetype, style, cyt, tuple(nuclei), halo, tuple(folds),
                        tuple(nucleoli))


def _finish_spec(rng: np.random.Generator, archetype: str, style: DomainStyle, cyt: np.ndarray,
                 nuclei: tuple[np.ndarray, ...], halo: np.ndarray | None,
                 folds: tuple[np.ndarray, ...],
                 nucleoli: tuple[_Nucleolus, ...] = ()) -> CellSpec:
    m = MORPHOLOGY[archetype]
    palette = m.palette[int(rng.integers(len(m.palette)))]
    return CellSpec(
        cyt=cyt, nuclei=nuclei, halo=halo, folds=folds, nucleoli=nucleoli,
        cyt_od=_stain_od(rng, palette, style), nuc_od=_stain_od(rng, "nucleus", style),
        cyt_density=float(rng.uniform(*m.cyt_density)),
        nuc_density=float(rng.uniform(*m.nuc_density)),
        cyt_texture=float(rng.uniform(0.14, 0.28)), cyt_rim=float(rng.uniform(0.25, 0.6)),
        fine=m.fine, coarse=m.coarse, halo_strength=float(rng.uniform(0.8, 0.92)),
        tex_seed=int(rng.integers(0, 2**62)),
    )

