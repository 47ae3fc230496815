"""Public entry points: validate the arguments, write a dataset, move it into place.

:func:`generate_dataset` writes one dataset into a temporary sibling folder, puts the marker in
last and renames the folder into place, so an interrupted run never leaves a half-written dataset;
it never deletes a folder that lacks the marker (it may hold real data). :func:`generate_all`
writes all three datasets under one root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from aecnn_utils.data.taxonomy import DATASET_NAMES
from aecnn_utils.data.synthetic.layouts import (
    CRIC_FULL_FIELD,
    CRIC_LAYOUTS,
    MIN_FIELD_SIDE,
    write_cric,
    write_herlev,
    write_sipakmed,
)
from aecnn_utils.data.synthetic.marker import MARKER_NAME, marker_fields, write_marker, read_marker


def _validate(name: str, n_per_class: int, seed: int, cric_layout: str,
              field_size: tuple[int, int]) -> tuple[str, int, int, tuple[int, int]]:
    """Check the arguments of :func:`generate_dataset`; return (name, n, seed, field_size)."""
    if not isinstance(name, str) or name.lower() not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
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
    wanted = marker_fields(name, n_per_class, seed, cric_layout, field_size)
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
            write_sipakmed(tmp, n_per_class, seed)
        elif name == "herlev":
            write_herlev(tmp, n_per_class, seed)
        else:
            write_cric(tmp, n_per_class, seed, cric_layout, field_size)
        # The marker goes in last: a root with a marker is always complete.
        write_marker(tmp, wanted)
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
            for name in DATASET_NAMES}
