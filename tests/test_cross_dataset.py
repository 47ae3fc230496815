"""The cross-dataset options: segmentation and scale harmonisation, stain normalisation and input
modes, the optional augmentations, mixup, TTA and AdaBN, each through the trainer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aecnn_utils.data.cache import cache_images, square_resize
from aecnn_utils.data.images import load_image
from aecnn_utils.data.segment import (
    NUCLEUS_FEATURES,
    NUCLEUS_FIELD,
    content_box,
    harmonise,
    nucleus_features,
    segment,
)
from aecnn_utils.data.synthetic.layouts import HERLEV_MASK_COLORS
from aecnn_utils.data.transforms import (
    INPUT_MODES,
    AugmentConfig,
    InputPrep,
    augmentations,
    compute_norm_stats,
)
from aecnn_utils.models import load_trained_model
from aecnn_utils.training.config import RunConfig, profile_config
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.runs import checkpoint_probs, evaluate_checkpoint
from aecnn_utils.training.scoring import softmax


def _herlev_cells(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, true nucleus mask) of every synthetic Herlev cell."""
    out = []
    for path in sorted((root / "herlev").glob("*/*.BMP")):
        mask = load_image(path.with_name(path.stem + "-d.bmp"))
        out.append((load_image(path), (mask == HERLEV_MASK_COLORS["nucleus"]).all(axis=2)))
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_nucleus_segmentation_matches_generator_masks(synthetic_root: Path) -> None:
    cells = _herlev_cells(synthetic_root)
    assert len(cells) >= 20
    dice = [_dice(segment(image).nucleus, truth) for image, truth in cells]
    assert np.median(dice) > 0.7, np.round(dice, 2)
    segs = [segment(image) for image, _ in cells]
    assert all(s.nucleus.any() and (s.cell | ~s.nucleus).all() for s in segs)  # nucleus in cell


def test_blank_crop_still_segments() -> None:
    seg = segment(np.full((40, 60, 3), 200, np.uint8))
    assert seg.nucleus.any() and seg.cell.shape == (40, 60)


def test_harmonise_fixes_the_nucleus_scale(synthetic_root: Path) -> None:
    """After ``nucleus`` harmonisation every nucleus spans ~1/NUCLEUS_FIELD of the frame,
    whatever its size in the crop (measured with the generator's masks, not the segmenter)."""
    spans = []
    for image, truth in _herlev_cells(synthetic_root)[:12]:
        seg = segment(image)
        if _dice(seg.nucleus, truth) < 0.7:
            continue
        out = harmonise(image, "nucleus", seg)
        assert out.shape[0] == out.shape[1]
        spans.append(seg.nucleus_diameter / out.shape[0])
    assert spans and np.allclose(spans, 1 / NUCLEUS_FIELD, atol=0.02)
    cell = harmonise(cells := _herlev_cells(synthetic_root)[0][0], "cell")
    assert cell.shape[0] == cell.shape[1] <= max(cells.shape[:2]) * 1.3
    assert square_resize(cells, 48, "nucleus").shape == (48, 48, 3)
    with pytest.raises(ValueError, match="unknown harmonisation"):
        harmonise(cells, "zoom")


def test_nucleus_features_read_shape() -> None:
    image = np.full((100, 100, 3), 235, np.uint8)
    cv2.circle(image, (50, 50), 40, (190, 160, 200), -1)  # cytoplasm
    disc = image.copy()
    cv2.circle(disc, (50, 50), 12, (60, 40, 110), -1)
    ragged = image.copy()
    angles = np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 18, 9)
    star = np.stack([50 + radii * np.cos(angles), 50 + radii * np.sin(angles)], 1)
    cv2.fillPoly(ragged, [np.round(star).astype(np.int32)], (60, 40, 110))
    a, b = nucleus_features(disc), nucleus_features(ragged)
    assert list(a) == list(NUCLEUS_FEATURES)
    assert a["circularity"] > 0.85 and a["irregularity"] < 0.05
    assert b["irregularity"] > a["irregularity"] + 0.1
    assert a["nc_ratio"] == pytest.approx(12**2 / (40**2 - 12**2), rel=0.25)


def test_input_modes_and_stain_normalisation(synthetic_root: Path) -> None:
    sip = np.stack([square_resize(load_image(p), 48)
                    for p in sorted((synthetic_root / "sipakmed").rglob("CROPPED/*.bmp"))[:30]])
    her = np.stack([square_resize(im, 48) for im, _ in _herlev_cells(synthetic_root)[:30]])
    for mode in INPUT_MODES:
        out = InputPrep(mode)(her[0])
        assert out.shape == her[0].shape and out.dtype == np.uint8
        if mode != "rgb":
            assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    np.testing.assert_array_equal(InputPrep("grey")(her)[3], InputPrep("grey")(her[3]))
    for method, key in (("macenko", "HERef"), ("reinhard", "target_means")):
        prep = InputPrep.fit("rgb", method, sip)
        again = InputPrep.from_dict(prep.to_dict())
        normed = again(her)
        np.testing.assert_array_equal(normed, prep.normalise_stain(her))
        # the stain the method measures (Macenko's stain vectors, Reinhard's Lab means) moves
        # from Herlev's towards the training set's
        ref = np.asarray(prep.reference[key])

        def gap(images: np.ndarray, method: str = method, key: str = key,
                ref: np.ndarray = ref) -> float:
            return float(np.abs(np.asarray(InputPrep.fit("rgb", method, images).reference[key])
                                - ref).sum())
        assert gap(normed) < 0.5 * gap(her), method
    stats = compute_norm_stats(her, prep=InputPrep("grey"))
    assert stats.mean[0] == pytest.approx(stats.mean[2])
    with pytest.raises(ValueError, match="input_mode='hsv'"):
        InputPrep("hsv")


def test_strong_augmentations_run_and_change_images(synthetic_root: Path) -> None:
    image = square_resize(_herlev_cells(synthetic_root)[0][0], 64)
    only = {"p_stain": 1.0, "p_color": 1.0, "p_blur": 1.0, "p_zoom": 1.0}
    off = AugmentConfig.none()
    for name, p in only.items():
        pipeline = augmentations(64, AugmentConfig(**{**off.__dict__, name: p}))
        outs = [pipeline(image=image)["image"] for _ in range(5)]  # a draw may be near identity
        assert all(o.shape == image.shape for o in outs), name
        assert any(not np.array_equal(o, image) for o in outs), name
    with pytest.raises(ValueError, match="zoom_scale"):
        AugmentConfig(zoom_scale=(0.0, 1.0))


def test_padding_bars_are_never_cell(synthetic_root: Path) -> None:
    """Herlev's shared copies were padded to a square with flat bars of a dark colour: the
    segmentation (and so the ``cell`` crop) must find the cell inside them, as without them."""
    image, _ = _herlev_cells(synthetic_root)[0]
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    assert content_box(image) == (0, h, 0, w)  # no bars: the whole crop
    padded = np.empty((h, w + 60, 3), np.uint8)
    padded[:] = (88, 80, 110)  # a dark purple bar, as in the shared Herlev copies
    padded[:, 30:30 + w] = image
    noisy = np.clip(padded + rng.normal(0, 1, padded.shape), 0, 255).astype(np.uint8)
    y0, y1, x0, x1 = content_box(noisy)
    assert (y0, y1) == (0, h) and 30 <= x0 <= 32 and 30 + w - 2 <= x1 <= 30 + w
    alone, seg = segment(image), segment(noisy)
    assert not seg.cell[:, :30].any() and not seg.cell[:, 30 + w:].any()
    assert _dice(seg.cell[:, 30:30 + w], alone.cell) > 0.9
    assert harmonise(noisy, "cell", seg).shape == harmonise(image, "cell", alone).shape


def test_a_new_segmentation_is_a_new_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from aecnn_utils.training import config as C

    cell, pad = RunConfig(resize_mode="cell"), RunConfig()
    before = cell.fingerprint(), pad.fingerprint()
    monkeypatch.setattr(C, "SEGMENTATION_VERSION", C.SEGMENTATION_VERSION + 1)
    assert cell.fingerprint() != before[0] and pad.fingerprint() == before[1]


def test_fields_added_later_keep_old_run_ids() -> None:
    """Existing run folders must be found again: at their defaults, the cross-dataset fields
    leave the fingerprint as it was before they existed (values pinned when they were added,
    after data_root left the fingerprint). AECNN's id names its layer table: the default
    (``fast``) left out is the run that names it, and a run of ``base`` names ``base``."""
    assert RunConfig().fingerprint() == "d347586d"
    assert RunConfig(model_kwargs={"layers": "fast"}).fingerprint() == "d347586d"
    assert RunConfig(model_kwargs={"layers": "base"}).fingerprint() == "415f2a43"
    assert profile_config("cpu", model="resnet50", lr=0.005, recipe=False).fingerprint() == \
        "18eed25d"
    assert profile_config("smoke", recipe=False).fingerprint() == "ac87bd13"
    assert RunConfig(data_root="/elsewhere").fingerprint() == "d347586d"
    assert RunConfig(tta=True).fingerprint() != "d347586d"
    assert RunConfig(augment={"p_zoom": 0.5}).fingerprint() != "d347586d"


OPTIONS = {
    "nucleus": {"resize_mode": "nucleus"},
    "grey": {"input_mode": "grey"},
    "haematoxylin+macenko": {"input_mode": "haematoxylin", "stain_norm": "macenko"},
    "reinhard": {"stain_norm": "reinhard"},
    "strong+mixup": {"augment": AugmentConfig.strong().__dict__, "mixup": 0.4},
    "tta+adabn": {"tta": True, "adapt_bn": True},
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_option_trains_and_its_checkpoint_reproduces_the_outputs(
        option: str, synthetic_root: Path, tmp_path: Path, cache_dir: Path) -> None:
    """Each option through config -> trainer -> files; the best checkpoint, prepared the way
    its meta says, gives the outputs the trainer stored for that epoch, on the pool (from the
    trainer's cache) and on raw cells (as ``evaluate`` sees them)."""
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=48, epochs=2,
                            batch_size=16, n_boot=20, num_workers=0, **OPTIONS[option])
    result = train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
    saved = result.config
    for key in OPTIONS[option]:
        assert getattr(saved, key) == getattr(config, key), key
    stored = softmax(np.load(result.run_dir / "epochs.npz")["logits"][
        int(result.metrics["best_epoch"]) - 1])
    data = prepare_data(config, cache_dir, progress=False)
    _, probs = evaluate_checkpoint(result, data, "pool", device="cpu")
    np.testing.assert_allclose(probs, stored, atol=1e-4)
    model, meta = load_trained_model(result.best_checkpoint, map_location="cpu")
    assert meta["input"]["mode"] == config.input_mode
    assert meta["inference"] == {"tta": config.tta, "adapt_bn": config.adapt_bn}
    raw = cache_images(data.frame("pool"), config.image_size, cache_dir,
                       resize_mode=config.resize_mode, progress=False)
    _, probs_raw = checkpoint_probs(model, meta, raw, torch.device("cpu"))
    np.testing.assert_allclose(probs_raw, stored, atol=1e-4)


def test_nucleus_window_never_zooms_onto_a_speck() -> None:
    image = np.full((300, 340, 3), 230, np.uint8)
    cv2.circle(image, (170, 150), 120, (190, 160, 200), -1)
    cv2.circle(image, (170, 150), 5, (40, 30, 90), -1)  # an 11-px "nucleus"
    seg = segment(image)
    assert 0 < NUCLEUS_FIELD * seg.nucleus_diameter < 0.25 * 300  # its window would be small
    assert harmonise(image, "nucleus", seg).shape[:2] == (75, 75)  # MIN_WINDOW * 300
