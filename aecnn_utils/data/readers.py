"""Readers for the published layouts of SIPaKMeD, Herlev and CRIC Cervix.

Each reader walks a dataset root exactly as its publisher distributes it and returns one row per
cell in a :class:`pandas.DataFrame` with the columns of :data:`COLUMNS`:

``path``             image file (for CRIC's official release: the field image the cell is cut from)
``dataset``          ``sipakmed`` | ``herlev`` | ``cric``
``source_class``     the publisher's class name
``label_name``       the class in the chosen label scheme (:mod:`aecnn_utils.data.taxonomy`)
``label``            its integer index in ``taxonomy.class_names(scheme, dataset)``
``patient_or_slide`` the group that must stay on one side of a split (cluster, slide or field image)
``crop_x0..crop_y1`` crop box inside ``path`` (CRIC official layout), ``-1`` where the file is the cell

Readers only list files; decoding (and so detection of corrupt files) happens once, in
:mod:`aecnn_utils.data.cache`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from aecnn_utils.core.errors import warn
from aecnn_utils.data import taxonomy
from aecnn_utils.data.masks import is_herlev_mask
from aecnn_utils.data.errors import DatasetNotFoundError, DataWarning, LabelError, LayoutError
from aecnn_utils.data.images import image_size, is_image_file, load_image

COLUMNS: tuple[str, ...] = (
    "path", "dataset", "source_class", "label_name", "label", "patient_or_slide",
    "crop_x0", "crop_y0", "crop_x1", "crop_y1",
)

CRIC_CSV_COLUMNS: tuple[str, ...] = (
    "image_id", "image_filename", "image_doi", "cell_id", "bethesda_system", "nucleus_x",
    "nucleus_y",
)

LAYOUT_HINTS: dict[str, str] = {
    "sipakmed": "root/im_<Class>/[im_<Class>/]CROPPED/NNN_MM.bmp for the classes "
                + ", ".join(taxonomy.source_classes("sipakmed")),
    "herlev": "root/<class>/<slide>-<image>-<cell>.BMP for the classes "
              + ", ".join(taxonomy.source_classes("herlev")),
    "cric": "root/classifications.csv (or .json) with the field images beside it, or "
            "root/<Bethesda class>/*.png with the classes " + ", ".join(taxonomy.source_classes("cric")),
}

_SIPAKMED_NAME = re.compile(r"^(\d+)_(\d+)$")
_LEADING_NUMBER = re.compile(r"^(\d+)")
# Folder names of pre-cropped CRIC copies that circulate besides the exact Bethesda strings.
_CRIC_ALIASES: dict[str, str] = {
    "nilm": taxonomy.NILM,
    "negative": taxonomy.NILM,
    "negative for intraepithelial lesion": taxonomy.NILM,
    "asc-us": "ASC-US", "ascus": "ASC-US",
    "asc-h": "ASC-H", "asch": "ASC-H",
    "lsil": "LSIL", "hsil": "HSIL", "scc": "SCC",
}


# ----------------------------------------------------------------------------- helpers
def _require_root(root: str | Path, dataset: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetNotFoundError(
            f"{dataset} root not found: {root}. Download the dataset and unpack it there "
            f"(expected layout: {LAYOUT_HINTS[dataset]}), or generate synthetic data with "
            "`python -m aecnn_utils generate-data`."
        )
    if not root.is_dir():
        raise LayoutError(f"{dataset} root {root} is a file, not a folder")
    return root


def _slide_of(p: Path) -> str | None:
    """The leading number of a file name (Herlev's slide, CRIC's image): the split group."""
    m = _LEADING_NUMBER.match(p.name)
    return m.group(1) if m else None


def _listing(folder: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _descend_wrapper(root: Path, is_dataset_root: Callable[[Path], bool]) -> Path:
    """Follow single wrapping folders (as zip archives unpack to) down to the real root."""
    current = root
    for _ in range(3):
        if is_dataset_root(current):
            return current
        subdirs = [p for p in current.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subdirs) != 1:
            break
        current = subdirs[0]
    return root


def detect_layout(root: str | Path) -> str | None:
    """Name of the dataset whose published layout ``root`` has, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    for name, probe in (("sipakmed", _is_sipakmed_root), ("herlev", _is_herlev_root),
                        ("cric", _is_cric_root)):
        if probe(_descend_wrapper(root, probe)):
            return name
    return None


def _wrong_layout(root: Path, dataset: str) -> LayoutError:
    found = detect_layout(root)
    hint = (f" This looks like the {found} layout: use scan_dataset({found!r}, ...)."
            if found and found != dataset else "")
    return LayoutError(
        f"{root} is not in the {dataset} layout. Expected {LAYOUT_HINTS[dataset]}; "
        f"found: {_listing(root)}.{hint}"
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _frame(rows: list[dict], dataset: str, scheme: str) -> pd.DataFrame:
    """Attach labels of ``scheme`` to reader rows; drop (with a warning) unmappable classes."""
    names = taxonomy.class_names(scheme, dataset)
    if not rows:
        raise LayoutError(f"no {dataset} images found: every class folder is empty")
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("label_name", "label")])
    df["label_name"] = [taxonomy.map_label(dataset, c, scheme) for c in df["source_class"]]
    dropped = df["label_name"].isna()
    if dropped.any():
        for cls, n in df.loc[dropped, "source_class"].value_counts().items():
            reason = next(m.reason for m in taxonomy.MAPPINGS
                          if m.dataset == dataset and m.source_class == cls)
            warn(
                f"{n} {dataset} cells of class {cls!r} have no {scheme!r} label ({reason}); "
                "they are left out", DataWarning)
        df = df.loc[~dropped]
    df["label"] = [names.index(n) for n in df["label_name"]]
    df = df[list(COLUMNS)].reset_index(drop=True)
    return df.astype({c: "int64" for c in ("label", "crop_x0", "crop_y0", "crop_x1", "crop_y1")})


def _check_classes(found: Iterable[str], dataset: str, root: Path) -> None:
    found = set(found)
    missing = [c for c in taxonomy.source_classes(dataset) if c not in found]
    if missing:
        warn(f"{dataset} root {root} has no folder for the classes: "
                      f"{', '.join(missing)}", DataWarning)


def _row(path: Path, dataset: str, source_class: str, group: str,
         box: tuple[int, int, int, int] = (-1, -1, -1, -1)) -> dict:
    return {"path": str(path), "dataset": dataset, "source_class": source_class,
            "patient_or_slide": group, "crop_x0": box[0], "crop_y0": box[1],
            "crop_x1": box[2], "crop_y1": box[3]}


def _collect(folder: Path, dataset: str, source_class: str, group_of: Callable[[Path], str | None],
             skip: Callable[[Path], bool] = lambda p: False) -> list[dict]:
    files = [p for p in _image_files(folder) if not skip(p)]
    if not files:
        warn(f"class folder {folder} holds no images; class {source_class!r} is empty",
                      DataWarning)
    rows, ungrouped = [], []
    for p in files:
        group = group_of(p)
        if group is None:
            ungrouped.append(p.name)
            group = f"{source_class}/{p.stem}"
        rows.append(_row(p, dataset, source_class, group))
    if ungrouped:
        warn(
            f"{len(ungrouped)} file names in {folder} do not follow the {dataset} naming scheme "
            f"(e.g. {ungrouped[0]}); each is treated as its own group for splits",
            DataWarning)
    return rows


# ----------------------------------------------------------------------------- SIPaKMeD
def _sipakmed_class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("im_"))


def _is_sipakmed_root(root: Path) -> bool:
    return bool(_sipakmed_class_dirs(root))


def _sipakmed_cropped(class_dir: Path) -> Path | None:
    for candidate in (class_dir / "CROPPED", class_dir / class_dir.name / "CROPPED"):
        if candidate.is_dir():
            return candidate
    return None


def scan_sipakmed(root: str | Path, scheme: str = "binary") -> pd.DataFrame:
    """List the single-cell crops of SIPaKMeD (``im_<Class>/[im_<Class>/]CROPPED/NNN_MM.*``).

    The full-slide cluster images (``NNN.bmp``) and contour files (``*.dat``) are ignored. The
    group of a crop is ``<Class>/NNN``: cells cut from one cluster image share it.
    """
    root = _require_root(root, "sipakmed")
    root = _descend_wrapper(root, _is_sipakmed_root)
    class_dirs = _sipakmed_class_dirs(root)
    if not class_dirs:
        raise _wrong_layout(root, "sipakmed")
    known = taxonomy.source_classes("sipakmed")
    rows: list[dict] = []
    for class_dir in class_dirs:
        cls = class_dir.name[len("im_"):]
        if cls not in known:
            raise LabelError(f"unknown SIPaKMeD class folder {class_dir}: {cls!r} is not one of "
                             f"{', '.join(known)}. Rename or remove the folder.")
        cropped = _sipakmed_cropped(class_dir)
        if cropped is None:
            raise LayoutError(f"SIPaKMeD class folder {class_dir} has no CROPPED/ folder "
                              f"(found: {_listing(class_dir)}); expected {LAYOUT_HINTS['sipakmed']}")

        def group_of(p: Path, cls: str = cls) -> str | None:
            m = _SIPAKMED_NAME.match(p.stem)
            return f"{cls}/{m.group(1)}" if m else None

        rows += _collect(cropped, "sipakmed", cls, group_of)
    _check_classes((d.name[len("im_"):] for d in class_dirs), "sipakmed", root)
    return _frame(rows, "sipakmed", scheme)


# ----------------------------------------------------------------------------- Herlev
def _is_herlev_root(root: Path) -> bool:
    return any((root / c).is_dir() for c in taxonomy.source_classes("herlev"))


def scan_herlev(root: str | Path, scheme: str = "binary") -> pd.DataFrame:
    """List the Herlev cells (``<class>/<slide>-<image>-<cell>.BMP``), skipping ``*-d`` masks.

    The group is the leading slide number of the file name.
    """
    root = _require_root(root, "herlev")
    root = _descend_wrapper(root, _is_herlev_root)
    if not _is_herlev_root(root):
        raise _wrong_layout(root, "herlev")
    known = taxonomy.source_classes("herlev")
    rows: list[dict] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        if folder.name not in known:
            raise LabelError(f"unknown Herlev class folder {folder}: expected only "
                             f"{', '.join(known)}. Rename or remove the folder.")
        rows += _collect(folder, "herlev", folder.name, _slide_of, skip=is_herlev_mask)
    _check_classes((f.name for f in folders), "herlev", root)
    return _frame(rows, "herlev", scheme)


# ----------------------------------------------------------------------------- CRIC
def _cric_folder_class(name: str) -> str | None:
    if name in taxonomy.source_classes("cric"):
        return name
    return _CRIC_ALIASES.get(name.strip().lower())


def _is_cric_root(root: Path) -> bool:
    if (root / "classifications.csv").is_file() or (root / "classifications.json").is_file():
        return True
    return any(p.is_dir() and _cric_folder_class(p.name) for p in root.iterdir())


def _read_cric_annotations(root: Path) -> list[dict]:
    csv_path, json_path = root / "classifications.csv", root / "classifications.json"
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in CRIC_CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LayoutError(f"{csv_path} lacks the columns {', '.join(missing)}; the official "
                                  f"release has {', '.join(CRIC_CSV_COLUMNS)}")
            return [dict(r, _where=f"{csv_path}:{i + 2}") for i, r in enumerate(reader)]
    with json_path.open(encoding="utf-8") as fh:
        images = json.load(fh)
    rows = []
    for img in images:
        for cell in img.get("classifications", []):
            rows.append({"image_id": img["image_id"], "image_filename": img["image_name"],
                         "cell_id": cell["cell_id"], "bethesda_system": cell["bethesda_system"],
                         "nucleus_x": cell["nucleus_x"], "nucleus_y": cell["nucleus_y"],
                         "_where": f"{json_path} (image {img['image_id']}, cell {cell['cell_id']})"})
    return rows


def crop_box(cx: float, cy: float, width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """A ``size`` x ``size`` box centred on (cx, cy), shifted to lie inside a width x height image.

    Where the image is smaller than ``size`` the box is the whole image along that axis.
    """
    def axis(c: float, extent: int) -> tuple[int, int]:
        if extent <= size:
            return 0, extent
        lo = min(max(int(round(c)) - size // 2, 0), extent - size)
        return lo, lo + size

    x0, x1 = axis(cx, width)
    y0, y1 = axis(cy, height)
    return x0, y0, x1, y1


def scan_cric(root: str | Path, scheme: str = "binary", crop_size: int = 100) -> pd.DataFrame:
    """List the CRIC Cervix cells, from either published form.

    (a) the official release: ``classifications.csv`` (or ``classifications.json``) with one row
    per cell (``image_id, image_filename, image_doi, cell_id, bethesda_system, nucleus_x,
    nucleus_y``) and the 1376x1020 field images anywhere below ``root``. Each cell becomes a
    ``crop_size`` square centred on its nucleus, clamped at the field borders.
    (b) pre-cropped folders named by Bethesda class (``root/<class>/*.png``).

    The group is the field image id, so that cells of one field stay on one side of a split.
    """
    if crop_size < 8:
        raise ValueError(f"crop_size must be at least 8 pixels, got {crop_size}")
    root = _require_root(root, "cric")
    root = _descend_wrapper(root, _is_cric_root)
    if not _is_cric_root(root):
        raise _wrong_layout(root, "cric")
    if (root / "classifications.csv").is_file() or (root / "classifications.json").is_file():
        return _scan_cric_official(root, scheme, crop_size)
    rows: list[dict] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        cls = _cric_folder_class(folder.name)
        if cls is None:
            raise LabelError(f"unknown CRIC class folder {folder}: expected the Bethesda classes "
                             f"{', '.join(taxonomy.source_classes('cric'))}")
        rows += _collect(folder, "cric", cls, _slide_of)
    _check_classes((_cric_folder_class(f.name) for f in folders), "cric", root)
    return _frame(rows, "cric", scheme)


def _scan_cric_official(root: Path, scheme: str, crop_size: int) -> pd.DataFrame:
    annotations = _read_cric_annotations(root)
    if not annotations:
        raise LayoutError(f"the CRIC annotation file in {root} lists no cells")
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and is_image_file(p):
            index.setdefault(p.name, p)
    sizes: dict[Path, tuple[int, int]] = {}
    known = taxonomy.source_classes("cric")
    rows: list[dict] = []
    for a in annotations:
        cls = a["bethesda_system"]
        if cls not in known:
            raise LabelError(f"{a['_where']}: unknown bethesda_system {cls!r}; expected one of "
                             f"{', '.join(known)}")
        field = index.get(a["image_filename"])
        if field is None:
            raise DatasetNotFoundError(
                f"{a['_where']}: field image {a['image_filename']!r} not found under {root}. "
                "Unpack the release's image archive into that folder.")
        if field not in sizes:
            sizes[field] = image_size(field)
        w, h = sizes[field]
        try:
            cx, cy = float(a["nucleus_x"]), float(a["nucleus_y"])
        except (TypeError, ValueError) as exc:
            raise LayoutError(f"{a['_where']}: nucleus_x/nucleus_y are not numbers") from exc
        if not (0 <= cx < w and 0 <= cy < h):
            raise LayoutError(f"{a['_where']}: nucleus ({cx:g}, {cy:g}) lies outside the "
                              f"{w}x{h} field image {field}")
        rows.append(_row(field, "cric", cls, str(a["image_id"]), crop_box(cx, cy, w, h, crop_size)))
    _check_classes((r["source_class"] for r in rows), "cric", root)
    return _frame(rows, "cric", scheme)


# ----------------------------------------------------------------------------- entry points
READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "sipakmed": scan_sipakmed,
    "herlev": scan_herlev,
    "cric": scan_cric,
}


def scan_dataset(name: str, root: str | Path, scheme: str = "binary", **kwargs) -> pd.DataFrame:
    """Read dataset ``name`` (sipakmed, herlev, cric) from ``root`` into one row per cell."""
    key = name.lower()
    if key not in READERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(READERS)}")
    return READERS[key](root, scheme=scheme, **kwargs)
