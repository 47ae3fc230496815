"""The three published folder layouts, written from synthetic cells.

:func:`write_sipakmed`, :func:`write_herlev` and :func:`write_cric` each fill an empty folder
with one dataset in the layout that :mod:`aecnn_utils.data.readers` parses (the layouts are
described in the package docstring, :mod:`aecnn_utils.data.synthetic`). Every cell draws from its
own generator, keyed by (seed, dataset, class, index), so a cell does not depend on the order or
the number of cells generated; groupings and field layouts use their own keyed generators.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aecnn_utils.core.names import CRIC_LAYOUTS
from aecnn_utils.data.masks import HERLEV_MASK_COLORS
from aecnn_utils.data.readers import CRIC_CSV_COLUMNS, crop_box
from aecnn_utils.data.taxonomy import DATASET_NAMES, source_classes
from aecnn_utils.data.synthetic.cells import CellSpec, pick_archetype, sample_cell
from aecnn_utils.data.synthetic.render import render_field, render_single
from aecnn_utils.data.synthetic.styles import CLASS_ARCHETYPES, DOMAIN_STYLES

CRIC_CROP_SIZE = 100
CRIC_FULL_FIELD: tuple[int, int] = (1376, 1020)
MIN_FIELD_SIDE = 128  # smallest CRIC field side: the 100 px crops must fit
# CRIC cells shrink with fields smaller than the real 1376x1020, but not below this factor (so
# that a 100 px crop of a small test field still shows a cell, not a speck).
CRIC_MIN_FIELD_SCALE = 0.6
SIPAKMED_CLUSTER_SIZE: tuple[int, int] = (256, 192)  # (width, height) of the NNN.bmp images

# Class names and their order come from the taxonomy (one source of truth for the layouts).
CLASSES: dict[str, tuple[str, ...]] = {name: source_classes(name) for name in DATASET_NAMES}


# Stable integer keys for the per-cell random generators (never Python's hash()).
_DATASET_KEY: dict[str, int] = {"sipakmed": 1, "herlev": 2, "cric": 3}
_PURPOSE_GROUPS = 100  # [seed, ds, 100 + class_key, 0]: cluster / slide grouping of a class
_PURPOSE_FIELD = 200  # [seed, ds, 200 + class_key, group]: one cluster or field image
_PURPOSE_CRIC_ASSIGN = 300  # [seed, 3, 300, 0]: which CRIC cells go on which field


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
    """One ``x,y`` point per line (SIPaKMeD ``.dat`` contour files)."""
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
    """The random generator of one keyed purpose (see ``_DATASET_KEY`` and ``_PURPOSE_*``)."""
    return np.random.default_rng([seed, *keys])


def _cell(seed: int, dataset: str, class_key: int,
          index: int) -> tuple[np.random.Generator, CellSpec, str]:
    """The generator, spec and archetype of one cell (independent of generation order)."""
    rng = _rng(seed, _DATASET_KEY[dataset], class_key, index)
    archetype = pick_archetype(rng, CLASS_ARCHETYPES[dataset][CLASSES[dataset][class_key]])
    return rng, sample_cell(rng, archetype, DOMAIN_STYLES[dataset]), archetype


def write_sipakmed(root: Path, n: int, seed: int) -> None:
    """``n`` single-cell crops per class, grouped into cluster images with contour files."""
    style = DOMAIN_STYLES["sipakmed"]
    ds = _DATASET_KEY["sipakmed"]
    cw, ch = SIPAKMED_CLUSTER_SIZE
    for ck, cls in enumerate(CLASSES["sipakmed"]):
        folder = root / f"im_{cls}" / f"im_{cls}"
        cropped = folder / "CROPPED"
        cropped.mkdir(parents=True)
        sizes = _partition(_rng(seed, ds, _PURPOSE_GROUPS + ck, 0), n, 2, 5)
        index = 0
        for g, size in enumerate(sizes):
            cells = [_cell(seed, "sipakmed", ck, index + j) for j in range(size)]
            index += size
            for j, (rng, spec, arch) in enumerate(cells):
                img, _, _ = render_single(rng, spec, style, arch)
                _encode(cropped / f"{g + 1:03d}_{j + 1:02d}.bmp", img)
            # The cluster image: the same cells, smaller, on one field.
            frng = _rng(seed, ds, _PURPOSE_FIELD + ck, g)
            specs = [c[1] for c in cells]
            area = sum(np.pi * s.bound**2 for s in specs)
            scale = min(style.px_per_um, float(np.sqrt(0.3 * cw * ch / area)))
            field_img, centres = render_field(frng, specs, style, cw, ch, scale, border=False)
            _encode(folder / f"{g + 1:03d}.bmp", field_img)
            for j, (spec, c) in enumerate(zip(specs, centres, strict=True)):
                _write_contour(folder / f"{g + 1:03d}_cyt{j + 1:02d}.dat", spec.cyt * scale + c)
                _write_contour(folder / f"{g + 1:03d}_nuc{j + 1:02d}.dat",
                               spec.nuclei[0] * scale + c)


def _herlev_mask(shape: tuple[int, int], cyt: np.ndarray, nuclei: list[np.ndarray]) -> np.ndarray:
    """The colour-coded ``-d.bmp`` segmentation of one cell (BGR, as cv2 writes it)."""
    def bgr(name: str) -> tuple[int, int, int]:
        r, g, b = HERLEV_MASK_COLORS[name]
        return (b, g, r)

    mask = np.empty((*shape, 3), np.uint8)
    mask[:] = bgr("background")
    cv2.fillPoly(mask, [np.round(cyt).astype(np.int32)], bgr("cytoplasm"), cv2.LINE_8)
    for nuc in nuclei:
        cv2.fillPoly(mask, [np.round(nuc).astype(np.int32)], bgr("nucleus"), cv2.LINE_8)
    return mask


def write_herlev(root: Path, n: int, seed: int) -> None:
    """``n`` single-cell images per class with their segmentation masks, 2-4 cells per slide."""
    style = DOMAIN_STYLES["herlev"]
    ds = _DATASET_KEY["herlev"]
    for ck, cls in enumerate(CLASSES["herlev"]):
        folder = root / cls
        folder.mkdir(parents=True)
        sizes = _partition(_rng(seed, ds, _PURPOSE_GROUPS + ck, 0), n, 2, 4)
        index = 0
        for g, size in enumerate(sizes):
            slide = 149_100_000 + ck * 1_000_000 + g * 20
            for j in range(size):
                rng, spec, arch = _cell(seed, "herlev", ck, index)
                index += 1
                img, cyt, nuclei = render_single(rng, spec, style, arch)
                stem = f"{slide:09d}-{slide + 2 + 3 * (j // 2):09d}-{j + 1:03d}"
                _encode(folder / f"{stem}.BMP", img)
                _encode(folder / f"{stem}-d.bmp", _herlev_mask(img.shape[:2], cyt, nuclei))


@dataclass(frozen=True)
class _CricCell:
    """One cell annotated on a CRIC field: its class, cell id and nucleus position (pixels)."""

    class_key: int
    cell_id: int
    nucleus_x: int
    nucleus_y: int


def _cric_fields(seed: int, n: int, width: int,
                 height: int) -> Iterator[tuple[int, np.ndarray, list[_CricCell]]]:
    """Yield (image_id, field image, [_CricCell, ...]) for every CRIC field."""
    style = DOMAIN_STYLES["cric"]
    ds = _DATASET_KEY["cric"]
    shrink = min(width / CRIC_FULL_FIELD[0], height / CRIC_FULL_FIELD[1])
    scale = style.px_per_um * float(np.clip(shrink, CRIC_MIN_FIELD_SCALE, 1.0))
    keys = [(ck, i) for ck in range(len(CLASSES["cric"])) for i in range(n)]
    arng = _rng(seed, ds, _PURPOSE_CRIC_ASSIGN, 0)
    order = [keys[k] for k in arng.permutation(len(keys))]
    sizes = _partition(arng, len(order), 3, 6)
    start, cell_id = 0, 1
    for f, size in enumerate(sizes):
        members = order[start:start + size]
        start += size
        specs = [_cell(seed, "cric", ck, i)[1] for ck, i in members]
        frng = _rng(seed, ds, _PURPOSE_FIELD, f)
        img, centres = render_field(frng, specs, style, width, height, scale, border=True)
        cells = []
        for (ck, _), spec, c in zip(members, specs, centres, strict=True):
            nx, ny = spec.nucleus_center * scale + c
            cells.append(_CricCell(class_key=ck, cell_id=cell_id,
                                   nucleus_x=int(np.clip(round(nx), 0, width - 1)),
                                   nucleus_y=int(np.clip(round(ny), 0, height - 1))))
            cell_id += 1
        yield f + 1, img, cells


def _cric_filename(seed: int, image_id: int) -> str:
    """A hash-like field file name, as in the official release."""
    digest = hashlib.sha256(f"aecnn-synthetic-cric/{seed}/{image_id}".encode()).hexdigest()
    return digest[:32] + ".png"


def write_cric(root: Path, n: int, seed: int, layout: str, field_size: tuple[int, int]) -> None:
    """``n`` cells per class on shared fields, as ``layout`` (one of :data:`CRIC_LAYOUTS`)."""
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
                             "nucleus_x": cell.nucleus_x, "nucleus_y": cell.nucleus_y})
                entries.append({"cell_id": cell.cell_id, "bethesda_system": cls,
                                "nucleus_x": cell.nucleus_x, "nucleus_y": cell.nucleus_y})
            else:
                x0, y0, x1, y1 = crop_box(cell.nucleus_x, cell.nucleus_y, width, height,
                                          CRIC_CROP_SIZE)
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


