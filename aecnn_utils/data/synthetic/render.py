"""Pixels of the synthetic renderer: cells in optical density, single-cell crops and fields.

Each cell adds its optical density (Beer-Lambert) to an image-sized buffer, so overlapping cells
darken each other; :func:`_finish_image` then multiplies the background by the transmission and
adds optics blur and sensor noise. :func:`render_single` draws a single-cell crop (SIPaKMeD,
Herlev), :func:`render_field` a field of several cells (CRIC field, SIPaKMeD cluster image).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from aecnn_utils.data.synthetic.cells import CellSpec, sample_cell
from aecnn_utils.data.synthetic.styles import NEIGHBOUR_ARCHETYPES, DomainStyle


def _poly_mask(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled polygon as a float32 mask in [0, 1] (anti-aliased, sub-pixel accurate)."""
    m = np.zeros(shape, np.uint8)
    poly = np.round(pts * 16.0).astype(np.int32)
    cv2.fillPoly(m, [poly], 255, lineType=cv2.LINE_AA, shift=4)
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


def _render_cell(od: np.ndarray, spec: CellSpec, center: Sequence[float], scale: float) -> None:
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
        for nucleolus in spec.nucleoli:
            p = np.array([nucleolus.x, nucleolus.y]) * scale + c - off - np.array([bx0, by0])
            cv2.circle(nd, (round(p[0] * 16), round(p[1] * 16)),
                       max(1, round(nucleolus.radius * scale * 16)), 1.9, -1, cv2.LINE_8, 4)
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
        spec = sample_cell(rng, "neutrophil", style)
        _render_cell(od, spec, (rng.uniform(0, width), rng.uniform(0, height)), scale)


def render_single(rng: np.random.Generator, spec: CellSpec, style: DomainStyle,
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
        name = archetype if rng.random() < 0.4 else NEIGHBOUR_ARCHETYPES[int(rng.integers(3))]
        other = sample_cell(rng, name, style)
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


def render_field(rng: np.random.Generator, specs: Sequence[CellSpec], style: DomainStyle,
                  width: int, height: int, scale: float,
                  border: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A field (CRIC field or SIPaKMeD cluster image) holding ``specs``; returns image, centres.

    With ``border`` one cell usually lies near an edge and the others keep less margin (CRIC).
    """
    radii = [s.bound * scale for s in specs]
    offsets = [s.nucleus_center * scale for s in specs]
    border_idx = 0 if border and rng.random() < 0.75 else None
    centres = _place(rng, radii, offsets, width, height, border_idx, 0.6 if border else 1.0)
    od = np.zeros((height, width, 3), np.float32)
    if rng.random() < style.neutrophil_p:
        _add_neutrophils(rng, od, style, scale)
    for spec, c in zip(specs, centres, strict=True):
        _render_cell(od, spec, c, scale)
    return _finish_image(rng, od, style), centres
