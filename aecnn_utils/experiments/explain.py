"""Explainability: where does a model look, and is it the nucleus?

The paper claims that AECNN's attention focuses on diagnostically relevant regions (the
nucleus) and names explainability as future work. This module measures it:

* **Grad-CAM** (Selvaraju et al., 2017) through the maintained ``grad-cam`` package
  (pytorch-grad-cam): the gradient-weighted activation map of one layer for a target class,
  positive part, upsampled to the input and scaled to [0, 1] per image (:func:`grad_cam`). The
  layer is the deepest stage whose map is at least :data:`MIN_CAM_SIZE` pixels wide
  (:func:`cam_layer`): the last stage at 224 px, one earlier at the ``cpu`` profile's 96 px,
  where the last stage is 3x3.
* **The model's own spatial attention** (Eq. 3, :func:`aecnn_utils.models.attention_maps`),
  at the stages that have it, upsampled to the input (:func:`explain_run`).
* **The nucleus check** (:func:`nucleus_share`): the share of a map's mass that falls on the
  nucleus, against the nucleus's share of the image (what a map spread evenly would give):
  ``ratio = mass share / area share`` per cell, reported as the mean over cells of that ratio
  (not the ratio of the mean shares); above 1 the map concentrates on the nucleus. Nucleus
  masks (:func:`nucleus_masks`) come from the annotation where the dataset has one (Herlev's
  ``*-d.bmp``, which the synthetic generator writes too) and otherwise from the kit's
  segmentation (:func:`aecnn_utils.data.segment.segment`) of the cell as the model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from aecnn_utils.data.cache import CachedImages, square_resize
from aecnn_utils.data.masks import annotated_nucleus
from aecnn_utils.data.segment import segment
from aecnn_utils.data.transforms import NormStats, build_eval_transform
from aecnn_utils.evaluation.metrics import bootstrap_group_mean
from aecnn_utils.models import AECNN, attention_maps, model_label
from aecnn_utils.training.prepare import PreparedData
from aecnn_utils.training.runs import RunResult

#: Smallest side (pixels) of the layer Grad-CAM reads (:func:`cam_layer`).
MIN_CAM_SIZE = 6


def _stages(model: nn.Module) -> list[nn.Module]:
    """The model's stages in order, deepest last (AECNN, ResNet, MobileNet/EfficientNet)."""
    if isinstance(model, AECNN):
        return list(model.stages)
    if hasattr(model, "layer4"):  # torchvision ResNet
        return [model.layer1, model.layer2, model.layer3, model.layer4]
    if hasattr(model, "features"):  # torchvision MobileNetV3, EfficientNet
        return list(model.features)
    raise ValueError(f"no Grad-CAM layer known for {type(model).__name__}: give layer=")


def cam_layer(model: nn.Module, image_size: int, min_size: int = MIN_CAM_SIZE) -> nn.Module:
    """The deepest stage of ``model`` whose output is at least ``min_size`` pixels wide at
    ``image_size`` (measured by a forward pass of a blank image)."""
    sizes: dict[int, int] = {}
    stages = _stages(model)
    handles = [s.register_forward_hook(
        lambda _m, _i, out, k=k: sizes.__setitem__(k, out.shape[-1])) for k, s in
        enumerate(stages)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    wide = [k for k, size in sizes.items() if size >= min_size]
    return stages[max(wide) if wide else 0]


def grad_cam(model: nn.Module, images: torch.Tensor, targets: Sequence[int],
             layer: nn.Module | None = None) -> np.ndarray:
    """Grad-CAM maps (``N x H x W``, float32 in [0, 1], the input's size) of ``model`` for class
    ``targets[i]`` of image ``i`` (normalised ``N x 3 x H x W``), at ``layer`` (default
    :func:`cam_layer`). The model is run in eval mode and left as it was."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if len(targets) != len(images):
        raise ValueError(f"one target class per image: {len(targets)} for {len(images)}")
    layer = layer or cam_layer(model, images.shape[-1])
    was_training = model.training
    model.eval()
    try:
        with GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t))
                                                     for t in targets])
    finally:
        model.train(was_training)
    return np.clip(np.asarray(maps, dtype=np.float32), 0.0, 1.0)


def nucleus_masks(cells: CachedImages, resize_mode: str = "pad",
                  rows: Sequence[int] | None = None) -> tuple[np.ndarray, list[str]]:
    """Nucleus masks of cached cells (``rows``, default all) as the model sees them (``N x S x
    S`` bool at the cache's size), and where each came from: ``annotated`` (Herlev's
    ``*-d.bmp`` of an uncropped image, resized as the cache resized the image: ``resize_mode``
    pad or stretch) or ``segmented`` (:func:`~aecnn_utils.data.segment.segment` of the cached
    image)."""
    rows = range(len(cells)) if rows is None else rows
    array, frame = cells.array(), cells.frame
    masks, sources = [], []
    for i in rows:
        row = frame.iloc[i]
        annotated = (annotated_nucleus(row["path"]) if resize_mode in ("pad", "stretch")
                     and int(row.get("crop_x0", -1)) < 0 else None)
        if annotated is not None:  # padded with the border's median: background
            image = np.repeat(annotated[..., None], 3, axis=2).astype(np.uint8) * 255
            masks.append(square_resize(image, cells.size, resize_mode)[..., 0] >= 128)
            sources.append("annotated")
        else:
            masks.append(segment(np.asarray(array[i])).nucleus)
            sources.append("segmented")
    return np.stack(masks), sources


def nucleus_share(maps: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Per image: ``mass`` (the map's share on the nucleus), ``area`` (the nucleus's share of
    the image) and ``ratio`` (mass / area; 1 = no preference, above 1 = on the nucleus). An
    all-zero map has no mass: NaN."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    total = maps.sum(axis=(1, 2))
    on = (maps * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(total > 0, on / total, np.nan)
        area = masks.mean(axis=(1, 2))
        return pd.DataFrame({"mass": mass, "area": area,
                             "ratio": np.where(area > 0, mass / area, np.nan)})


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB ``uint8`` image with a [0, 1] map laid over it in the jet colour map, weight
    ``alpha`` (pytorch-grad-cam's ``show_cam_on_image``)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(np.asarray(image, dtype=np.float32) / 255,
                             np.clip(heat, 0, 1).astype(np.float32), use_rgb=True,
                             image_weight=1 - alpha)


@dataclass
class Explained:
    """One run's maps on a set of cells (:func:`explain_run`)."""

    model: str
    cells: pd.DataFrame  # the cells' table rows, prediction, correctness, nucleus shares
    images: np.ndarray  # N x S x S x 3 uint8, as the model sees them before normalisation
    cam: np.ndarray  # N x S x S Grad-CAM of the predicted class
    attention: np.ndarray | None  # N x S x S spatial attention at ``attention_stage``
    attention_stage: str | None
    masks: np.ndarray  # N x S x S nucleus masks


def explain_run(run: RunResult, data: PreparedData, part: str = "test",
                device: str = "cpu", batch_size: int = 32,
                rows: Sequence[int] | None = None) -> Explained:
    """Grad-CAM (of the predicted class), spatial attention and nucleus shares of a run's best
    model on the cells of ``part`` (``val`` or ``test``; ``rows`` of them, default all), prepared
    as the run's evaluation prepares them (maps without TTA or AdaBN). The attention shown is
    that of the deepest stage whose own map is at least :data:`MIN_CAM_SIZE` wide, the rule
    :func:`cam_layer` applies to Grad-CAM; every stage's nucleus share is in ``cells``."""
    from aecnn_utils.core.device import resolve_device
    from aecnn_utils.models import load_trained_model

    if part not in ("val", "test"):
        raise ValueError(f"part={part!r} is not valid; choose val or test")
    dev = resolve_device(device)
    model, meta = load_trained_model(run.best_checkpoint, map_location=dev)
    model = model.to(dev).eval()
    cells = data.caches["pool"]
    index = np.asarray(data.index[part])
    index = index if rows is None else index[np.asarray(rows, dtype=int)]
    transform = build_eval_transform(int(meta["image_size"]), NormStats.from_dict(meta["norm"]),
                                     data.prep.mode_only)  # the cache is stain-normalised
    array = cells.array()
    images = np.stack([np.asarray(array[i]) for i in index])
    layer = cam_layer(model, images.shape[1])
    logits, cams, attention, maps_by_name = [], [], {}, {}
    for start in range(0, len(images), batch_size):
        x = torch.stack([transform(image=im)["image"] for im in images[start:start + batch_size]]
                        ).to(dev)
        with torch.no_grad():
            out = model(x).float()
        logits.append(out.cpu().numpy())
        cams.append(grad_cam(model, x, out.argmax(1).tolist(), layer))
        if isinstance(model, AECNN):
            for stage, maps in attention_maps(model, x).items():
                if "spatial" in maps:
                    native = maps["spatial"].shape[-1]
                    up = F.interpolate(maps["spatial"].float(), size=x.shape[-2:],
                                       mode="bilinear", align_corners=False)[:, 0]
                    attention.setdefault((stage, native), []).append(up.cpu().numpy())
    z = np.concatenate(logits)
    probs = torch.softmax(torch.from_numpy(z), 1).numpy()
    masks, sources = nucleus_masks(cells, run.config.resize_mode, index)
    cam = np.concatenate(cams)
    table = cells.frame.iloc[index].reset_index(drop=True)[
        ["path", "dataset", "source_class", "label", "label_name", "patient_or_slide"]].copy()
    table["pred"] = probs.argmax(1)
    table["prob_pred"] = probs.max(1)
    table["correct"] = table["pred"] == table["label"]
    table["mask"] = sources
    for name, maps in {"cam": cam, **{f"attention_{stage}": np.concatenate(v)
                                      for (stage, _), v in attention.items()}}.items():
        maps_by_name[name] = maps
        share = nucleus_share(maps, masks)
        for col in share:
            table[f"{name}_{col}"] = share[col].to_numpy()
    wide = [(stage, native) for stage, native in attention if native >= MIN_CAM_SIZE]
    chosen = max(wide, key=lambda k: int(k[0].removeprefix("stage")), default=None)
    chosen = chosen or next(iter(attention), None)
    return Explained(run.config.model, table, images, cam,
                     maps_by_name[f"attention_{chosen[0]}"] if chosen else None,
                     chosen[0] if chosen else None, masks)


def nucleus_table(explained: dict[str, Explained], n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """The nucleus check per model, map (``explanation``) and publisher class (and ``all``):
    cells (``n``; ``empty``: cells whose map has no mass, e.g. a Grad-CAM with no positive
    part, left out), the mean mass and area shares, and the mean over cells of each cell's
    ratio (not the ratio of the two means) with a 95% interval
    from a bootstrap over slides (:func:`aecnn_utils.evaluation.metrics.bootstrap_group_mean`);
    ``mask``: where the masks came from."""
    rows = []
    for key, e in explained.items():
        maps = [c.removesuffix("_ratio") for c in e.cells if c.endswith("_ratio")]
        for name in maps:
            for cls, part in [("all", e.cells), *e.cells.groupby("source_class", sort=False)]:
                ok = part[np.isfinite(part[f"{name}_ratio"])]
                if ok.empty:
                    continue
                label = ("Grad-CAM" if name == "cam" else
                         name.replace("attention_", "spatial attention, "))
                low, high = bootstrap_group_mean(ok[f"{name}_ratio"].to_numpy(),
                                                 ok["patient_or_slide"].to_numpy(),
                                                 n_boot=n_boot, seed=seed)
                rows.append({
                    "model": key, "explanation": label, "source_class": cls, "n": len(ok),
                    "empty": len(part) - len(ok),
                    "mass": ok[f"{name}_mass"].mean(), "area": ok[f"{name}_area"].mean(),
                    "ratio": ok[f"{name}_ratio"].mean(), "ratio_low": low, "ratio_high": high,
                    "mask": ", ".join(sorted(set(ok["mask"])))})
    return pd.DataFrame(rows)


def nucleus_summary(table: pd.DataFrame) -> str:
    """The nucleus check in words, from :func:`nucleus_table` (all classes): per model and map,
    the mean ratio with its interval and what it shows: "on the nucleus" when the interval
    lies above 1 (more mass there than a map spread evenly), "off the nucleus" below 1, else
    "not shown"; the masks' origin."""
    lines = []
    for _, r in table[table["source_class"] == "all"].iterrows():
        verdict = ("more on the nucleus than an even map" if r["ratio_low"] > 1 else
                   "less on the nucleus than an even map" if r["ratio_high"] < 1 else
                   "no preference shown")
        lines.append(f"- {model_label(r['model'])}, {r['explanation']}: on average "
                     f"{100 * r['mass']:.1f}% of a cell's map on its nucleus, which covers "
                     f"{100 * r['area']:.1f}% of its image on average; mean over cells of each "
                     f"cell's ratio {r['ratio']:.2f} [{r['ratio_low']:.2f}, "
                     f"{r['ratio_high']:.2f}], {verdict} ({int(r['n'])} cells; masks "
                     f"{r['mask']}).")
    return "\n".join(lines)
