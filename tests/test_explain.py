"""Explainability: Grad-CAM (through the ``grad-cam`` package), spatial attention, nucleus masks
and the nucleus check, on a model built to look at one side and on a trained run."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from aecnn_utils.data.masks import annotated_nucleus
from aecnn_utils.evaluation.metrics import bootstrap_group_mean
from aecnn_utils.experiments.explain import (
    cam_layer,
    explain_run,
    grad_cam,
    nucleus_masks,
    nucleus_share,
    nucleus_table,
)
from aecnn_utils.models import build_model
from aecnn_utils.reporting import plots
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.runs import load_run

from .deploy_runs import deploy_run


class _Halves(nn.Module):
    """``N x 1 x S x S`` -> ``N x 2 x S x S``: channel 0 keeps the left half, 1 the right."""

    def __init__(self, size: int) -> None:
        super().__init__()
        half = torch.zeros(2, size, size)
        half[0, :, : size // 2] = 1.0
        half[1, :, size // 2:] = 1.0
        self.register_buffer("sides", half)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * self.sides


class _Sides(nn.Module):
    """Class 1 is the brightness of the left half, class 0 that of the right half."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1)
        nn.init.ones_(self.features.weight)
        nn.init.zeros_(self.features.bias)
        self.halves = _Halves(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.halves(self.features(x))
        return torch.stack([f[:, 1].mean((1, 2)), f[:, 0].mean((1, 2))], dim=1)


def test_grad_cam_follows_the_target_class() -> None:
    model = _Sides(32)
    x = torch.rand(4, 3, 32, 32) + 0.5
    left = grad_cam(model, x, [1, 1, 1, 1], layer=model.halves)
    right = grad_cam(model, x, [0, 0, 0, 0], layer=model.halves)
    assert left.shape == right.shape == (4, 32, 32)
    for maps in (left, right):
        assert maps.dtype == np.float32 and maps.min() >= 0 and maps.max() <= 1
    assert left[:, :, :16].sum() > 0.95 * left.sum()
    assert right[:, :, 16:].sum() > 0.95 * right.sum()
    with pytest.raises(ValueError, match="one target class per image"):
        grad_cam(model, x, [0], layer=model.halves)


@pytest.mark.parametrize("size", [64, 96, 224])
def test_grad_cam_of_every_model_has_the_inputs_size_and_lies_in_0_1(size: int) -> None:
    torch.manual_seed(0)
    for name in ("aecnn", "mobilenet_v3_small", "resnet50"):
        model = build_model(name)
        x = torch.randn(2, 3, size, size)
        maps = grad_cam(model, x, [0, 1])
        assert maps.shape == (2, size, size), name
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1, name
        assert model.training  # left as it was


def test_cam_layer_is_the_deepest_stage_at_least_six_pixels_wide() -> None:
    model = build_model("aecnn")
    assert cam_layer(model, 224) is model.stages[-1]  # 7 x 7
    assert cam_layer(model, 96) is model.stages[-2]  # the last is 3 x 3
    resnet = build_model("resnet50")
    assert cam_layer(resnet, 224) is resnet.layer4 and cam_layer(resnet, 96) is resnet.layer3


def test_nucleus_share_by_hand() -> None:
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True  # a quarter of the image
    maps = np.stack([np.ones((4, 4)), masks[0].astype(float), np.zeros((4, 4))])
    share = nucleus_share(maps, masks)
    assert share["area"].tolist() == [0.25] * 3
    assert share["mass"].iloc[0] == pytest.approx(0.25) and share["ratio"].iloc[0] == 1.0
    assert share["mass"].iloc[1] == 1.0 and share["ratio"].iloc[1] == 4.0
    assert np.isnan(share["ratio"].iloc[2])  # no mass
    with pytest.raises(ValueError, match="same shape"):
        nucleus_share(maps[:, :2], masks)


def test_group_bootstrap_of_a_mean() -> None:
    low, high = bootstrap_group_mean([2.0] * 6, [1, 1, 2, 2, 3, 3])
    assert low == high == 2.0
    low, high = bootstrap_group_mean([0, 0, 1, 1], ["a", "a", "b", "b"], n_boot=500)
    assert 0 <= low < 0.5 < high <= 1
    with pytest.raises(ValueError, match="one group per value"):
        bootstrap_group_mean([1, 2], [1])


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    run = load_run(deploy_run(tmp_path_factory.getbasetemp()))
    data = prepare_data(run.config, tmp_path_factory.mktemp("cache"), progress=False)
    return {"run": run, "data": data, "e": explain_run(run, data, "test")}


def test_synthetic_herlev_cells_have_annotated_nuclei_that_are_dark(explained: dict) -> None:
    data, e = explained["data"], explained["e"]
    assert set(e.cells["mask"]) == {"annotated"}  # the generator writes Herlev's *-d.bmp
    assert annotated_nucleus(e.cells["path"].iloc[0]) is not None
    grey = e.images.mean(axis=3)
    inside = [g[m].mean() for g, m in zip(grey, e.masks, strict=True) if m.any()]
    outside = [g[~m].mean() for g, m in zip(grey, e.masks, strict=True) if m.any()]
    assert np.mean(inside) < np.mean(outside) - 20  # the nucleus is the dark part
    masks, sources = nucleus_masks(data.caches["pool"], "pad", data.index["test"][:3])
    assert masks.shape == (3, 32, 32) and sources == ["annotated"] * 3
    # a cell without an annotation is segmented
    masks, sources = nucleus_masks(data.caches["train"], "pad", [0])
    assert sources == ["segmented"] and masks[0].any()


def test_explain_run_through_a_trained_run(explained: dict) -> None:
    e, data = explained["e"], explained["data"]
    n = len(data.index["test"])
    assert len(e.cells) == n and e.cam.shape == e.masks.shape == (n, 32, 32)
    assert e.cam.min() >= 0 and e.cam.max() <= 1
    assert e.attention is not None and e.attention_stage in {"stage2", "stage3", "stage4"}
    assert e.attention.min() >= 0 and e.attention.max() <= 1  # a sigmoid
    assert set(e.cells["correct"]) <= {True, False}
    assert (e.cells["prob_pred"] >= 0.5).all()  # binary: the predicted class's probability
    table = nucleus_table({"aecnn": e}, n_boot=100)
    overall = table[table["source_class"] == "all"]
    assert set(overall["explanation"]) >= {"Grad-CAM", f"spatial attention, {e.attention_stage}"}
    ok = table.dropna(subset=["ratio_low"])
    assert ((ok["ratio_low"] <= ok["ratio"] + 1e-9) & (ok["ratio"] <= ok["ratio_high"] + 1e-9)
            ).all()
    assert (table["n"] + table["empty"] <= n).all()
    fig = plots.plot_explanations(e)
    assert len(fig.axes) == len(set(e.cells["source_class"])) * 6 + 1  # and the colour bar
    assert fig.axes[-1].get_ylabel().startswith("map value")
    assert any("blank panel" in text.get_text() for text in fig.texts)
    plt.close(fig)


def test_bad_part_is_refused(explained: dict) -> None:
    with pytest.raises(ValueError, match="part="):
        explain_run(explained["run"], explained["data"], "train")
