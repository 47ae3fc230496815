"""AECNN blocks against the paper's equations, shapes, sizes, gradients; baselines; complexity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from aecnn_utils.models import (
    AECNN,
    ATTENTION_MODES,
    MODELS,
    AttentionFusion,
    ChannelAttention,
    DepthwiseSeparableConv,
    SpatialAttention,
    attention_maps,
    build_model,
    complexity_table,
    count_macs,
    count_params,
    fuse_batchnorm,
    layer_table,
)
from aecnn_utils.models.aecnn import make_divisible


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- Eq. (1)
def test_depthwise_separable_structure_and_cost() -> None:
    block = DepthwiseSeparableConv(16, 32, stride=2)
    dw, pw = block.depthwise[0], block.pointwise[0]
    assert dw.groups == 16 and dw.kernel_size == (3, 3) and dw.stride == (2, 2)
    assert pw.kernel_size == (1, 1) and pw.in_channels == 16 and pw.out_channels == 32
    # O(k^2 m + m n) weights instead of O(k^2 m n)
    assert dw.weight.numel() + pw.weight.numel() == 9 * 16 + 16 * 32
    assert block(torch.randn(2, 16, 20, 20)).shape == (2, 32, 10, 10)
    assert not block.has_residual


def test_depthwise_separable_residual_only_when_shapes_match() -> None:
    block = DepthwiseSeparableConv(8, 8, stride=1).eval()
    assert block.has_residual
    x = torch.randn(1, 8, 6, 6)
    plain = block.pointwise(block.depthwise(x))
    torch.testing.assert_close(block(x), plain + x)
    assert not DepthwiseSeparableConv(8, 8, stride=1, residual=False).has_residual
    with pytest.raises(ValueError, match="stride"):
        DepthwiseSeparableConv(8, 8, stride=3)


# ----------------------------------------------------------------------------- Eq. (2)
def test_channel_attention_equals_equation_2_by_hand() -> None:
    ca = ChannelAttention(32, reduction=4)
    x = torch.randn(2, 32, 5, 7)
    gap = x.mean(dim=(2, 3))                                   # GAP(F): N x C
    w1, b1 = ca.fc1.weight.flatten(1), ca.fc1.bias              # W1: r x C
    w2, b2 = ca.fc2.weight.flatten(1), ca.fc2.bias              # W2: C x r
    expected = torch.sigmoid(torch.relu(gap @ w1.T + b1) @ w2.T + b2)
    out = ca(x)
    assert out.shape == (2, 32, 1, 1)
    torch.testing.assert_close(out.flatten(1), expected)


@pytest.mark.parametrize(("channels", "reduction", "hidden"),
                         [(32, 16, 8), (128, 16, 8), (256, 16, 16), (384, 16, 24), (64, 4, 16)])
def test_channel_attention_bottleneck_width(channels: int, reduction: int, hidden: int) -> None:
    assert ChannelAttention(channels, reduction).fc1.out_channels == hidden


def test_make_divisible() -> None:
    assert make_divisible(2) == 8 and make_divisible(20) == 24 and make_divisible(33.6) == 32
    assert make_divisible(17) == 16 and make_divisible(19.5) == 24  # never 10% below


# ----------------------------------------------------------------------------- Eq. (3)
def test_spatial_attention_equals_equation_3_by_hand() -> None:
    sa = SpatialAttention(7)
    x = torch.randn(2, 6, 9, 11)
    avg = x.mean(dim=1, keepdim=True)
    mx = x.max(dim=1, keepdim=True).values
    pooled = torch.cat([avg, mx], dim=1)
    expected = torch.sigmoid(nn.functional.conv2d(pooled, sa.conv.weight, sa.conv.bias,
                                                  padding=3))
    out = sa(x)
    assert out.shape == (2, 1, 9, 11)
    torch.testing.assert_close(out, expected)
    # explicit 7x7 sum at one interior pixel
    i, j = 4, 5
    patch = pooled[0, :, i - 3:i + 4, j - 3:j + 4]
    manual = torch.sigmoid((patch * sa.conv.weight[0]).sum() + sa.conv.bias[0])
    torch.testing.assert_close(out[0, 0, i, j], manual)
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(6)


# ----------------------------------------------------------------------------- Eq. (4)
def test_fusion_modes_follow_their_definitions() -> None:
    x = torch.randn(2, 16, 8, 8)
    par = AttentionFusion(16, "parallel")
    torch.testing.assert_close(par(x), x * par.ca(x) * par.sa(x))         # Eq. (4)
    seq = AttentionFusion(16, "sequential")
    refined = x * seq.ca(x)
    torch.testing.assert_close(seq(x), refined * seq.sa(refined))          # Algorithm: SA(CA(F))
    ch = AttentionFusion(16, "channel")
    assert ch.sa is None
    torch.testing.assert_close(ch(x), x * ch.ca(x))
    sp = AttentionFusion(16, "spatial")
    assert sp.ca is None
    torch.testing.assert_close(sp(x), x * sp.sa(x))
    none = AttentionFusion(16, "none")
    assert none.ca is None and none.sa is None and torch.equal(none(x), x)
    with pytest.raises(ValueError, match="unknown attention 'cbam'"):
        AttentionFusion(16, "cbam")


def test_parallel_and_sequential_differ() -> None:
    seq = AttentionFusion(16, "sequential")
    par = AttentionFusion(16, "parallel")
    par.load_state_dict(seq.state_dict())
    x = torch.randn(1, 16, 8, 8)
    assert not torch.allclose(seq(x), par(x))


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize("layers", ["base", "fast"])
@pytest.mark.parametrize("attention", ATTENTION_MODES)
@pytest.mark.parametrize("size", [(224, 224), (64, 64), (96, 160), (33, 47)])
def test_aecnn_shapes_for_every_attention_and_size(attention: str, size: tuple[int, int],
                                                   layers: str) -> None:
    model = AECNN(num_classes=3, attention=attention, layers=layers).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_base_layer_table_is_the_documented_one() -> None:
    model = build_model("aecnn", num_classes=2, layers="base")
    params = count_params(model)
    macs = count_macs(model, 224)
    assert params < 1_000_000
    assert macs < 150_000_000
    # the stage table documented in the module docstring
    rows = layer_table(model)
    assert [r["channels"] for r in rows] == [24, 32, 64, 128, 256, 384, 2]
    assert [r["output"] for r in rows] == ["112x112", "112x112", "56x56", "28x28", "14x14",
                                           "7x7", "1x1"]
    assert [r["attention"] for r in rows[1:-1]] == ["-", "-", "parallel", "parallel", "parallel"]


def test_default_model_is_the_documented_fast_table() -> None:
    model = build_model("aecnn", num_classes=2)
    assert count_params(model) < 200_000 and count_macs(model, 224) < 30_000_000
    assert count_macs(model, 224) < count_macs(build_model("aecnn", 2, layers="base"), 224) / 3
    rows = layer_table(model)
    assert [r["channels"] for r in rows] == [16, 32, 64, 128, 256, 2]
    assert [r["stride"] for r in rows[:-1]] == [2, 2, 2, 2, 2]
    assert [r["depth"] for r in rows[1:-1]] == [1, 2, 3, 2]
    assert [r["output"] for r in rows] == ["112x112", "56x56", "28x28", "14x14", "7x7", "1x1"]
    # attention at the same resolutions as the base table's (28, 14 and 7 at 224)
    assert [r["attention"] for r in rows[1:-1]] == ["-", "parallel", "parallel", "parallel"]
    with pytest.raises(ValueError, match="unknown layers 'tiny'; choose one of base, fast"):
        AECNN(layers="tiny")


@pytest.mark.parametrize(("name", "kwargs"), [("aecnn", {}), ("aecnn", {"layers": "base"}),
                                              ("mobilenet_v3_small", {})])
def test_fused_batchnorm_computes_the_same_and_leaves_the_model_alone(name: str,
                                                                       kwargs: dict) -> None:
    model = build_model(name, 2, **kwargs)
    with torch.no_grad():  # running statistics away from their initial values
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64) * 2 + 1)
    fused = fuse_batchnorm(model)
    assert model.training and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not fused.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    model.eval()
    x = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_attention_variants_change_parameters_as_expected() -> None:
    n = {mode: count_params(AECNN(attention=mode)) for mode in ATTENTION_MODES}
    sa = 2 * 49 + 1  # one 7x7 conv from 2 maps to 1, with bias
    assert n["parallel"] == n["sequential"]
    assert n["spatial"] == n["none"] + 3 * sa
    assert n["channel"] + 3 * sa == n["parallel"]
    assert n["none"] < n["channel"]


def test_width_multiplier_scales_the_model() -> None:
    small, base, large = (count_params(AECNN(width_mult=w)) for w in (0.5, 1.0, 1.5))
    assert small < base < large
    assert AECNN(width_mult=0.5).num_features == 128  # 256 channels halved (fast table)
    with pytest.raises(ValueError, match="width_mult"):
        AECNN(width_mult=0)


@pytest.mark.parametrize("attention", ATTENTION_MODES)
def test_gradient_reaches_every_parameter(attention: str) -> None:
    model = AECNN(num_classes=2, attention=attention, dropout=0.0)
    out = model(torch.randn(4, 3, 64, 64))
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_attention_maps_lie_in_unit_interval_and_have_the_right_shapes() -> None:
    model = AECNN(attention="sequential")
    maps = attention_maps(model, torch.randn(2, 3, 128, 96))
    assert set(maps) == {"stage2", "stage3", "stage4"}  # the fast table's: 28, 14, 7 px at 224
    assert maps["stage2"]["spatial"].shape == (2, 1, 16, 12)
    assert maps["stage4"]["channel"].shape == (2, 256, 1, 1)
    for stage in maps.values():
        for m in stage.values():
            assert m.min() >= 0 and m.max() <= 1
    assert model.training  # mode restored
    assert set(attention_maps(AECNN(attention="spatial"), torch.randn(1, 3, 64, 64))["stage3"]) \
        == {"spatial"}
    assert attention_maps(AECNN(attention="none"), torch.randn(1, 3, 64, 64)) == {}


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        AECNN(num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        AECNN(dropout=1.0)
    with pytest.raises(ValueError, match="unknown attention"):
        AECNN(attention="both")


# ----------------------------------------------------------------------------- factory, baselines
def test_build_model_every_name() -> None:
    for name in MODELS:
        model = build_model(name, num_classes=5).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(ValueError, match="unknown model 'vgg16'.*aecnn"):
        build_model("vgg16")


def test_local_imagenet_weights_are_loaded_and_head_replaced(tmp_path: Path) -> None:
    reference = tvm.mobilenet_v3_small(weights=None)  # stands in for a downloaded weights file
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("mobilenet_v3_small", num_classes=2, weights_path=path)
    torch.testing.assert_close(model.features[0][0].weight, reference.features[0][0].weight)
    assert model.classifier[-1].out_features == 2
    torch.save({"model": reference.state_dict()}, tmp_path / "ckpt.pth")
    build_model("mobilenet_v3_small", weights_path=tmp_path / "ckpt.pth")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("resnet50", weights_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="does not fit resnet50"):
        build_model("resnet50", weights_path=path)


# ----------------------------------------------------------------------------- complexity
@pytest.mark.parametrize(("name", "weights", "size"), [
    ("resnet50", tvm.ResNet50_Weights.IMAGENET1K_V1, 224),
    ("efficientnet_b3", tvm.EfficientNet_B3_Weights.IMAGENET1K_V1, 300),
    ("mobilenet_v3_small", tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1, 224),
])
def test_complexity_matches_torchvision_published_figures(name: str, weights, size: int) -> None:
    model = build_model(name, num_classes=1000)
    assert count_params(model) == weights.meta["num_params"]
    assert count_macs(model, size) / 1e9 == pytest.approx(weights.meta["_ops"], abs=1e-3)


def test_complexity_table() -> None:
    table = complexity_table(["aecnn", "mobilenet_v3_small"], input_size=64)
    assert list(table["model"]) == ["aecnn", "mobilenet_v3_small"]
    assert table.loc[0, "params_x_aecnn"] == 1.0
    assert (table["GMACs"] > 0).all() and (table["input"] == "64x64").all()


def test_load_trained_model_roundtrip(tmp_path: Path) -> None:
    from aecnn_utils.models import load_trained_model

    model = build_model("aecnn", num_classes=3, attention="sequential", width_mult=0.5)
    path = tmp_path / "best.pt"
    torch.save({"model_name": "aecnn", "num_classes": 3,
                "model_kwargs": {"attention": "sequential", "width_mult": 0.5},
                "model": model.state_dict(), "image_size": 64}, path)
    loaded, meta = load_trained_model(path)
    assert not loaded.training and meta["image_size"] == 64 and "model" not in meta
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    torch.save({"model": model.state_dict()}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="not a kit checkpoint: it lacks model_name"):
        load_trained_model(tmp_path / "bare.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_trained_model(tmp_path / "none.pt")


def test_flip_tta_is_the_mean_over_the_four_flips() -> None:
    """One batched call over the views equals the mean of the model on each flip."""
    from aecnn_utils.models.tta import FlipTTA

    model = build_model("aecnn", num_classes=2).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = torch.stack([model(x), model(x.flip(3)), model(x.flip(2)),
                                model(x.flip((2, 3)))]).mean(0)
        torch.testing.assert_close(FlipTTA(model)(x), expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(FlipTTA(model)(x), model(x))
