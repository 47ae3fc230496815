"""Decode-once cache: correctness of the stored pixels, reuse, invalidation, skipping bad files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecnn_utils.data.cache import cache_images, prepare_cell, square_resize
from aecnn_utils.data.errors import CorruptImageError, DataWarning
from aecnn_utils.data.readers import scan_dataset


def test_square_resize_pads_with_border_colour() -> None:
    img = np.full((10, 20, 3), 50, np.uint8)
    img[4:6, 8:12] = 250  # a bright "cell" in the middle
    out = square_resize(img, 20, "pad")
    assert out.shape == (20, 20, 3)
    assert (out[:5] == 50).all() and (out[-5:] == 50).all()   # padding uses the border colour
    assert out[9:11, 8:12].min() == 250                          # the cell is not stretched
    stretched = square_resize(img, 20, "stretch")
    assert stretched[9:11, 9:11].min() > 230 and stretched[0, 0].max() == 50


def test_square_resize_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown resize mode 'crop'"):
        square_resize(np.zeros((4, 4, 3), np.uint8), 8, "crop")


def test_cache_holds_exactly_the_prepared_cells(synthetic_root: Path, cache_dir: Path) -> None:
    df = scan_dataset("cric", synthetic_root / "cric", crop_size=64)
    cached = cache_images(df, 32, cache_dir, progress=False)
    arr = cached.array()
    assert arr.shape == (len(df), 32, 32, 3) and arr.dtype == np.uint8
    for i in (0, len(df) // 2, len(df) - 1):
        row = df.iloc[i]
        box = (row.crop_x0, row.crop_y0, row.crop_x1, row.crop_y1)
        np.testing.assert_array_equal(arr[i], prepare_cell(row.path, box, 32))
    assert not list(cache_dir.glob("*.tmp"))


def test_second_call_reuses_the_array(synthetic_root: Path, cache_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    first = cache_images(df, 24, cache_dir, progress=False)
    mtime = first.array_path.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("aecnn_utils.data.cache.prepare_cell", fail)
    second = cache_images(df, 24, cache_dir, progress=False)
    assert second.array_path == first.array_path
    assert second.array_path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second.array(), first.array())


def test_key_changes_with_size_files_and_mode(synthetic_root: Path, cache_dir: Path,
                                              tmp_path: Path) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    a = cache_images(df, 24, cache_dir, progress=False).array_path
    assert cache_images(df, 28, cache_dir, progress=False).array_path != a
    assert cache_images(df, 24, cache_dir, resize_mode="stretch", progress=False).array_path != a
    assert cache_images(df.iloc[:10], 24, cache_dir, progress=False).array_path != a
    # touching a file (new content) invalidates the key
    victim = Path(df.iloc[0]["path"])
    copy = tmp_path / "copy" / victim.name
    copy.parent.mkdir()
    copy.write_bytes(victim.read_bytes())
    df2 = df.copy()
    df2.loc[0, "path"] = str(copy)
    key1 = cache_images(df2, 24, cache_dir, progress=False).array_path
    os.utime(copy, ns=(1, 1))
    assert cache_images(df2, 24, cache_dir, progress=False).array_path != key1


def _with_broken_file(synthetic_root: Path, tmp_path: Path):
    df = scan_dataset("herlev", synthetic_root / "herlev").iloc[:8].copy()
    broken = tmp_path / "broken.bmp"
    good = Path(df.iloc[3]["path"]).read_bytes()
    broken.write_bytes(good[: len(good) // 3])
    df.loc[3, "path"] = str(broken)
    return df, broken


def test_corrupt_file_raises_with_name(synthetic_root: Path, cache_dir: Path,
                                       tmp_path: Path) -> None:
    df, _ = _with_broken_file(synthetic_root, tmp_path)
    with pytest.raises(CorruptImageError, match="broken.bmp"):
        cache_images(df, 16, cache_dir, progress=False)
    assert not list(cache_dir.glob("*.npy"))  # nothing half-written left behind


def test_corrupt_file_skipped_with_warning(synthetic_root: Path, cache_dir: Path,
                                           tmp_path: Path) -> None:
    df, broken = _with_broken_file(synthetic_root, tmp_path)
    with pytest.warns(DataWarning, match="skipped 1 undecodable image.*broken.bmp"):
        cached = cache_images(df, 16, cache_dir, on_error="warn", progress=False)
    assert len(cached) == 7 and cached.array().shape[0] == 7
    assert str(broken) not in set(cached.frame["path"])
    assert cached.skipped == [str(broken)]
    np.testing.assert_array_equal(cached.array()[3], prepare_cell(df.iloc[4]["path"],
                                                                  (-1, -1, -1, -1), 16))
    meta = json.loads(cached.array_path.with_suffix(".json").read_text())
    assert meta["kept"] == [0, 1, 2, 4, 5, 6, 7]
    # a cache built with skips still refuses under on_error="raise"
    with pytest.raises(CorruptImageError, match="broken.bmp"):
        cache_images(df, 16, cache_dir, progress=False)


def test_odd_modes_are_cached_as_rgb(tmp_path: Path, cache_dir: Path) -> None:
    folder = tmp_path / "herlev" / "normal_columnar"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((20, 30), 90, np.uint8), mode="L").save(folder / "1-1-001.png")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(folder / "1-1-002.png")
    rgba = np.zeros((10, 10, 4), np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(folder / "1-1-003.png")
    with pytest.warns(DataWarning):
        df = scan_dataset("herlev", tmp_path / "herlev")
    arr = cache_images(df, 8, cache_dir, progress=False).array()
    assert arr.shape == (3, 8, 8, 3)
    assert (arr[0] == 90).all() and (arr[2] == 255).all()


def test_cached_images_pickle_without_mapping(synthetic_root: Path, cache_dir: Path) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    cached = cache_images(df, 16, cache_dir, progress=False)
    cached.array()
    clone = pickle.loads(pickle.dumps(cached))
    assert clone._array is None
    np.testing.assert_array_equal(clone.array(), cached.array())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 4}, "at least 8"),
    ({"size": 16, "on_error": "ignore"}, "on_error"),
])
def test_bad_parameters(synthetic_root: Path, cache_dir: Path, kwargs, match) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    with pytest.raises(ValueError, match=match):
        cache_images(df, cache_dir=cache_dir, **kwargs)


@pytest.mark.real_data
def test_real_sipakmed_caches(real_root: Path, cache_dir: Path) -> None:
    df = scan_dataset("sipakmed", real_root / "sipakmed")
    cached = cache_images(df, 32, cache_dir, progress=False)
    assert cached.array().shape == (4049, 32, 32, 3)
    assert not cached.skipped
    # real cells are not blank: every image has contrast
    assert (cached.array().reshape(4049, -1).std(axis=1) > 5).all()
