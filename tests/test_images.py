"""Decoding odd and broken files: every mode converted to RGB uint8, every failure named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecnn_utils.data.errors import CorruptImageError, DatasetNotFoundError
from aecnn_utils.data.images import image_size, load_image


def _rgb(h: int = 12, w: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".bmp", ".BMP", ".png", ".tif"])
def test_rgb_roundtrip_lossless_formats(tmp_path: Path, suffix: str) -> None:
    arr = _rgb()
    path = tmp_path / f"cell{suffix}"
    Image.fromarray(arr).save(path, format={".tif": "TIFF"}.get(suffix.lower(), None))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, arr)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = _rgb()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (12, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255          # red
    rgba[:2, :, 3] = 255        # top half opaque, bottom half transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[3, 3].tolist() == [255, 255, 255]


def test_palette_image(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert out.shape == (12, 16, 3)


def test_sixteen_bit_is_scaled_to_eight(tmp_path: Path) -> None:
    arr = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8
    assert out[..., 0].tolist() == [[0, 255], [128, 1]]


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.fromarray(_rgb(64, 64)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=r"cannot decode image .*cut\.jpg.*good copy"):
        load_image(path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.bmp"
    path.write_text("this is not a bitmap")
    with pytest.raises(CorruptImageError, match="notes.bmp"):
        load_image(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(CorruptImageError, match="empty.png"):
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="gone.png"):
        load_image(tmp_path / "gone.png")


def test_image_size_reads_header(tmp_path: Path) -> None:
    Image.fromarray(_rgb(30, 50)).save(tmp_path / "s.png")
    assert image_size(tmp_path / "s.png") == (50, 30)
