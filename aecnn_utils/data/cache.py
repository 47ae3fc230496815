"""Decode and resize every image once, into a memory-mapped ``uint8`` array per file list and size.

Training reads the same cells every epoch; decoding BMP/JPEG and resizing each time would
dominate an epoch on a CPU. :func:`cache_images` turns a reader's table into an ``N x S x S x 3``
array stored as ``.npy`` under the cache folder (``$AECNN_CACHE_DIR`` or the user's cache folder,
never next to the data), keyed by a hash of the file list (paths, sizes, modification times, crop
boxes), the image size and the resize mode. A second call with the same inputs opens the array
memory-mapped without decoding anything.

Decoding is also where bad files are found: a corrupt or truncated image either stops the build
with an error naming it (``on_error="raise"``) or is skipped with a warning (``"warn"``).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aecnn_utils.core.errors import warn
from aecnn_utils.core.io import atomic_path, atomic_write_json
from aecnn_utils.data.errors import CorruptImageError, DataWarning
from aecnn_utils.data.images import load_image
from aecnn_utils.data.segment import SEGMENTATION_VERSION, SEGMENTED_MODES, harmonise

CACHE_VERSION = 1
RESIZE_MODES: tuple[str, ...] = ("pad", "stretch", "cell", "nucleus")


def default_cache_dir() -> Path:
    """``$AECNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/aecnn-kit``, else ``~/.cache/aecnn-kit``."""
    env = os.environ.get("AECNN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aecnn-kit"


def square_resize(image: np.ndarray, size: int, mode: str = "pad") -> np.ndarray:
    """Resize an RGB image to ``size x size``.

    ``pad`` (default) first pads the shorter side with the median colour of the image border, so
    that cell shape (and the nucleus-to-cytoplasm geometry) is not distorted; ``stretch`` resizes
    directly. ``cell`` and ``nucleus`` first crop a fixed extent of the cell or of its nucleus
    (scale harmonisation, :func:`aecnn_utils.data.segment.harmonise`). Downscaling uses area
    interpolation, upscaling bicubic.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    if mode in ("cell", "nucleus"):
        image = harmonise(image, mode)
    if mode != "stretch":
        h, w = image.shape[:2]
        if h != w:
            border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
            fill = [int(v) for v in np.median(border, axis=0)]
            d = abs(h - w)
            top, left = (d // 2, 0) if h < w else (0, d // 2)
            bottom, right = (d - d // 2, 0) if h < w else (0, d - d // 2)
            image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                       value=fill)
    interp = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)


def load_cell(path: str, box: tuple[int, int, int, int] = (-1, -1, -1, -1)) -> np.ndarray:
    """Decode one cell at its original resolution, cropping ``box`` (x0, y0, x1, y1) if x0 >= 0."""
    image = load_image(path)
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[y0:y1, x0:x1] if x0 >= 0 else image


def row_box(row: pd.Series | tuple) -> tuple[int, int, int, int]:
    """The crop box of a reader-table row."""
    return (int(row.crop_x0), int(row.crop_y0), int(row.crop_x1), int(row.crop_y1))


def prepare_cell(path: str, box: tuple[int, int, int, int], size: int,
                 mode: str = "pad") -> np.ndarray:
    """Decode one cell (cropping ``box`` when x0 >= 0) and resize it to ``size x size``."""
    return square_resize(load_cell(path, box), size, mode)


@dataclass
class CachedImages:
    """A decoded, resized image array (memory-mapped, read-only) and the table of its rows.

    Row ``i`` of :attr:`frame` is image ``i`` of :meth:`array`. Pickles without the mapping, so
    DataLoader workers each open their own.
    """

    array_path: Path
    frame: pd.DataFrame
    size: int
    skipped: list[str] = field(default_factory=list)
    _array: np.ndarray | None = field(default=None, repr=False, compare=False)

    def array(self) -> np.ndarray:
        """The ``N x size x size x 3`` ``uint8`` array, opened memory-mapped on first use."""
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return len(self.frame)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        return state


def _fingerprint(df: pd.DataFrame, size: int, mode: str) -> str:
    version = [CACHE_VERSION, SEGMENTATION_VERSION] if mode in SEGMENTED_MODES else [CACHE_VERSION]
    h = hashlib.sha256(json.dumps([*version, size, mode]).encode())
    for row in df[["path", "crop_x0", "crop_y0", "crop_x1", "crop_y1"]].itertuples(index=False):
        try:
            st = os.stat(row.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{row.path}|{stamp}|{row.crop_x0},{row.crop_y0},{row.crop_x1},{row.crop_y1}\n"
                 .encode())
    return h.hexdigest()[:20]


def cache_images(df: pd.DataFrame, size: int, cache_dir: str | Path | None = None, *,
                 resize_mode: str = "pad", on_error: str = "raise", progress: bool = True,
                 num_threads: int | None = None) -> CachedImages:
    """Decode, crop and resize every row of ``df`` once; reuse the cached array afterwards.

    Args:
        df: a reader table (:func:`aecnn_utils.data.scan_dataset`).
        size: side length of the square images, in pixels.
        cache_dir: where arrays go (default :func:`default_cache_dir`).
        resize_mode: ``pad`` (keep aspect ratio) or ``stretch``.
        on_error: ``raise`` stops at the first undecodable file (named in the error); ``warn``
            skips it with a warning, and the returned :attr:`CachedImages.frame` omits it.
        progress: show a progress bar while decoding.
        num_threads: decoding threads (default: the number of CPU cores).
    """
    if size < 8:
        raise ValueError(f"image size must be at least 8 pixels, got {size}")
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize_mode!r}; choose one of {RESIZE_MODES}")
    if len(df) == 0:
        raise ValueError("cannot cache an empty table of images")
    df = df.reset_index(drop=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    datasets = "+".join(sorted(df["dataset"].unique()))
    stem = f"{datasets}-{size}px-{resize_mode}-{_fingerprint(df, size, resize_mode)}"
    array_path, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"

    if array_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("skipped") and on_error == "raise":
            raise CorruptImageError(f"cannot decode image {meta['skipped'][0]} (found when this "
                                    "cache was built); replace the file or pass on_error='warn'")
        kept = df.iloc[meta["kept"]].reset_index(drop=True)
        _warn_skipped(meta["skipped"])
        return CachedImages(array_path, kept, size, meta["skipped"])

    cache_dir.mkdir(parents=True, exist_ok=True)
    boxes = df[["crop_x0", "crop_y0", "crop_x1", "crop_y1"]].to_numpy().tolist()
    paths = df["path"].tolist()

    def work(i: int) -> np.ndarray | CorruptImageError:
        try:
            return prepare_cell(paths[i], tuple(boxes[i]), size, resize_mode)
        except CorruptImageError as exc:
            if on_error == "raise":
                raise
            return exc

    kept_idx: list[int] = []
    skipped: list[str] = []
    with atomic_path(array_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(df), size, size, 3))
        with ThreadPoolExecutor(max_workers=num_threads or os.cpu_count() or 1) as pool:
            results = pool.map(work, range(len(df)))
            bar = tqdm(results, total=len(df), desc=f"caching {datasets} @ {size}px",
                       disable=not progress, leave=False)
            for i, result in enumerate(bar):
                if isinstance(result, CorruptImageError):
                    skipped.append(paths[i])
                    continue
                out[len(kept_idx)] = result
                kept_idx.append(i)
        out.flush()
        del out
        if skipped:  # compact: keep only the decoded rows
            full = np.load(tmp, mmap_mode="r")
            compact = tmp.with_name(tmp.name + ".compact")
            with compact.open("wb") as fh:
                np.save(fh, full[: len(kept_idx)])
            del full
            os.replace(compact, tmp)
    atomic_write_json(meta_path, {"version": CACHE_VERSION, "size": size,
                                  "resize_mode": resize_mode, "n": len(df), "kept": kept_idx,
                                  "skipped": skipped})
    _warn_skipped(skipped)
    return CachedImages(array_path, df.iloc[kept_idx].reset_index(drop=True), size, skipped)


def transformed_cache(cached: CachedImages, fn: Callable[[np.ndarray], np.ndarray], tag: str,
                      progress: bool = True) -> CachedImages:
    """``cached`` with ``fn`` applied to every image once, stored beside it (keyed by ``tag``,
    which must identify ``fn``, e.g. a hash of a fitted stain reference)."""
    path = cached.array_path.with_name(f"{cached.array_path.stem}-{tag}.npy")
    if not path.is_file():
        source = cached.array()
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=source.shape)
            for i in tqdm(range(len(source)), desc=f"preparing {tag}", disable=not progress,
                          leave=False):
                out[i] = fn(np.asarray(source[i]))
            out.flush()
            del out
    return CachedImages(path, cached.frame, cached.size, cached.skipped)


def _warn_skipped(skipped: list[str]) -> None:
    if skipped:
        shown = ", ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        warn(f"skipped {len(skipped)} undecodable image(s): {shown}. Replace them with "
                      "good copies to use them.", DataWarning)
