"""AECNN: the paper's lightweight attention-enhanced CNN (section 3, Eq. 1-4).

Building blocks, each a small ``nn.Module`` in the style of torchvision/timm:

* :class:`DepthwiseSeparableConv` - Eq. (1), ``Y = (X * K_d) (+) (X * K_p)``: a 3x3 depthwise
  convolution (one kernel ``K_d`` per channel) followed by a 1x1 pointwise convolution ``K_p``,
  each with batch norm and activation. Cost ``O(k^2 m + m n)`` instead of ``O(k^2 m n)`` per
  pixel for ``m`` input and ``n`` output channels.
* :class:`ChannelAttention` - Eq. (2), ``CA(F) = sigma(W2 delta(W1 GAP(F)))``: squeeze-and-
  excitation.
* :class:`SpatialAttention` - Eq. (3), ``SA(F) = sigma(f7x7([AvgPool(F); MaxPool(F)]))``, the
  pools taken across channels.
* :class:`AttentionFusion` - Eq. (4), ``F_att = F (.) CA(F) (.) SA(F)``.

**Which fusion.** The paper is inconsistent: Eq. (4) multiplies ``F`` by ``CA(F)`` and ``SA(F)``,
both computed from ``F`` ("parallel"), while its Algorithm writes ``F_att = SA(CA(F))``
("sequential", the CBAM order: spatial attention computed on the channel-refined map). Both are
implemented; the default is Eq. (4), the equation being the more specific statement. The
``"channel"``, ``"spatial"`` and ``"none"`` variants exist for the ablation study.

**Layer tables.** The paper gives none; both of ours are MobileNet-V1-like backbones with attention
at the end of the last three stages (at 28x28, 14x14 and 7x7 for a 224x224 input, where features
are about nuclei and chromatin rather than edges). ``layers="base"``, the first table, at 224x224,
width 1.0, 2 classes:

==========  =========================  ========  ======  =====  =========  ==========
stage       block                      channels  stride  depth  attention  output
==========  =========================  ========  ======  =====  =========  ==========
stem        conv3x3 + BN + ReLU        24        2       1      -          112x112
1           depthwise-separable        32        1       1      -          112x112
2           depthwise-separable        64        2       2      -          56x56
3           depthwise-separable        128       2       2      CA + SA    28x28
4           depthwise-separable        256       2       3      CA + SA    14x14
5           depthwise-separable        384       2       2      CA + SA    7x7
head        GAP, dropout, linear       classes   -       -      -          1x1
==========  =========================  ========  ======  =====  =========  ==========

About 0.49 M parameters and 0.11 GMACs at 224x224. On a CPU it trains slower than
MobileNetV3-Small (``make bench``): convolutions, forward and backward, take most of a training
step (``benchmarks/profile_model.py``), and the stem output and stage 1 keep 24 and 32 channels
at 112x112, where MobileNetV3-Small downsamples at once. ``layers="fast"``, **the default**,
downsamples right after the stem (no block at 112x112), has one block fewer at 56x56 and halves
the widths:

==========  =========================  ========  ======  =====  =========  ==========
stage       block                      channels  stride  depth  attention  output
==========  =========================  ========  ======  =====  =========  ==========
stem        conv3x3 + BN + ReLU        16        2       1      -          112x112
1           depthwise-separable        32        2       1      -          56x56
2           depthwise-separable        64        2       2      CA + SA    28x28
3           depthwise-separable        128       2       3      CA + SA    14x14
4           depthwise-separable        256       2       2      CA + SA    7x7
head        GAP, dropout, linear       classes   -       -      -          1x1
==========  =========================  ========  ======  =====  =========  ==========

About 0.17 M parameters and 0.027 GMACs at 224x224. It is the default because the paper's
"lightweight" claim can stand on it: on a 2-core CPU at 224 px it trains and infers faster than
MobileNetV3-Small, which ``base`` does not (``make bench``), and the paired test does not show
it worse in AUC than ``base`` (notebooks 04-06 keep ``base`` as an arm). (MACs are
multiply-accumulates, counted by :mod:`aecnn_utils.models.complexity`; a MAC is two FLOPs, and
papers often print MACs as "FLOPs".)
The network is fully convolutional up to global pooling, so any input size of at least 32x32
works, square or not.

**Beyond the paper's text:** a residual connection around every depthwise-separable block whose
input and output shapes match (stride 1, same channels), as in MobileNetV2; it eases optimisation
and costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

ATTENTION_MODES: tuple[str, ...] = ("parallel", "sequential", "channel", "spatial", "none")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``), never
    going more than 10% below ``value`` (the MobileNet/timm rule)."""
    min_value = min_value or divisor
    out = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class ConvBNAct(nn.Sequential):
    """Convolution, batch norm, activation."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act_layer: Callable[..., nn.Module] = nn.ReLU) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_chs),
            act_layer(inplace=True),
        )


class DepthwiseSeparableConv(nn.Module):
    """Eq. (1): depthwise 3x3 (kernel ``K_d``, groups = channels) + BN + act, then pointwise
    1x1 (kernel ``K_p``) + BN + act.

    Args:
        in_chs: input channels ``m``.
        out_chs: output channels ``n``.
        stride: stride of the depthwise convolution (1 or 2).
        residual: add the input to the output when shapes match (stride 1 and ``m == n``);
            this goes beyond the paper's text.
        act_layer: activation constructor (ReLU by default).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, residual: bool = True,
                 act_layer: Callable[..., nn.Module] = nn.ReLU) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.depthwise = ConvBNAct(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=act_layer)
        self.pointwise = ConvBNAct(in_chs, out_chs, 1, act_layer=act_layer)
        self.has_residual = residual and stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return out + x if self.has_residual else out


class ChannelAttention(nn.Module):
    """Eq. (2): ``CA(F) = sigma(W2 delta(W1 GAP(F)))``, a ``N x C x 1 x 1`` map in [0, 1].

    Args:
        channels: ``C``, channels of ``F``.
        reduction: ratio ``r``; the bottleneck has ``C / r`` channels, rounded to a multiple of
            ``divisor`` and at least ``divisor`` (timm's ``rd_divisor`` rule).
        divisor: rounding and floor of the bottleneck width (8).

    ``W1`` (``fc1``) and ``W2`` (``fc2``) are 1x1 convolutions with bias; ``delta`` is ReLU and
    ``sigma`` the logistic sigmoid.
    """

    def __init__(self, channels: int, reduction: int = 16, divisor: int = 8) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        hidden = make_divisible(channels / reduction, divisor)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3), keepdim=True)          # GAP(F)
        return torch.sigmoid(self.fc2(self.act(self.fc1(pooled))))


class SpatialAttention(nn.Module):
    """Eq. (3): ``SA(F) = sigma(f7x7([AvgPool(F); MaxPool(F)]))``, a ``N x 1 x H x W`` map in
    [0, 1]; average and max are taken across channels, ``f7x7`` is a 7x7 convolution from the
    two pooled maps to one.

    Args:
        kernel_size: size of ``f`` (7 in the paper).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class AttentionFusion(nn.Module):
    """Eq. (4) and its variants: how channel and spatial attention refine a feature map ``F``.

    ``parallel`` (Eq. 4, default): ``F (.) CA(F) (.) SA(F)``.
    ``sequential`` (the paper's Algorithm, CBAM): ``F' = F (.) CA(F)``, then ``F' (.) SA(F')``.
    ``channel``: ``F (.) CA(F)``. ``spatial``: ``F (.) SA(F)``. ``none``: ``F``.
    """

    def __init__(self, channels: int, mode: str = "parallel", reduction: int = 16,
                 kernel_size: int = 7) -> None:
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {mode!r}; choose one of "
                             f"{', '.join(ATTENTION_MODES)}")
        self.mode = mode
        use_ca = mode in ("parallel", "sequential", "channel")
        use_sa = mode in ("parallel", "sequential", "spatial")
        self.ca = ChannelAttention(channels, reduction) if use_ca else None
        self.sa = SpatialAttention(kernel_size) if use_sa else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "parallel":
            return x * self.ca(x) * self.sa(x)
        if self.mode == "sequential":
            x = x * self.ca(x)
            return x * self.sa(x)
        if self.ca is not None:
            return x * self.ca(x)
        if self.sa is not None:
            return x * self.sa(x)
        return x


@dataclass(frozen=True)
class StageSpec:
    """One stage of the backbone: ``depth`` depthwise-separable blocks, the first with
    ``stride``, then (if ``attention``) an :class:`AttentionFusion` on the stage output."""

    channels: int
    stride: int
    depth: int
    attention: bool


@dataclass(frozen=True)
class LayerTable:
    """A backbone: the stem's output channels and the stages."""

    stem_channels: int
    stages: tuple[StageSpec, ...]


#: The layer tables by name (see the module docstring); ``base`` is the default.
LAYER_TABLES: dict[str, LayerTable] = {
    "base": LayerTable(24, (StageSpec(32, 1, 1, False), StageSpec(64, 2, 2, False),
                            StageSpec(128, 2, 2, True), StageSpec(256, 2, 3, True),
                            StageSpec(384, 2, 2, True))),
    "fast": LayerTable(16, (StageSpec(32, 2, 1, False), StageSpec(64, 2, 2, True),
                            StageSpec(128, 2, 3, True), StageSpec(256, 2, 2, True))),
}


class AECNN(nn.Module):
    """The attention-enhanced lightweight CNN (see the module docstring for the layer table).

    Args:
        num_classes: outputs of the linear head (2 for normal/abnormal).
        width_mult: multiplies every channel count (rounded to multiples of 8).
        attention: fusion of Eq. (4): ``parallel`` | ``sequential`` | ``channel`` | ``spatial``
            | ``none``; applied in the stages whose spec says ``attention=True``.
        layers: the layer table, a name of :data:`LAYER_TABLES` (``fast``, the default, or
            ``base``).
        reduction: channel-attention reduction ratio ``r`` of Eq. (2).
        spatial_kernel: kernel size of ``f`` in Eq. (3).
        dropout: dropout before the linear head.
        residual: residual connections in blocks with matching shapes.
        in_chans: input channels (3 for RGB).
    """

    def __init__(self, num_classes: int = 2, width_mult: float = 1.0,
                 attention: str = "parallel", layers: str = "fast", reduction: int = 16,
                 spatial_kernel: int = 7, dropout: float = 0.2, residual: bool = True,
                 in_chans: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        if attention not in ATTENTION_MODES:
            raise ValueError(f"unknown attention {attention!r}; choose one of "
                             f"{', '.join(ATTENTION_MODES)}")
        if layers not in LAYER_TABLES:
            raise ValueError(f"unknown layers {layers!r}; choose one of "
                             f"{', '.join(LAYER_TABLES)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.attention = attention
        self.num_classes = num_classes
        table = LAYER_TABLES[layers]
        chs = make_divisible(table.stem_channels * width_mult)
        self.stem = ConvBNAct(in_chans, chs, 3, stride=2)
        blocks: list[nn.Module] = []
        for spec in table.stages:
            out = make_divisible(spec.channels * width_mult)
            layers: list[nn.Module] = []
            for i in range(spec.depth):
                layers.append(DepthwiseSeparableConv(chs, out, spec.stride if i == 0 else 1,
                                                     residual=residual))
                chs = out
            if spec.attention and attention != "none":
                layers.append(AttentionFusion(chs, attention, reduction, spatial_kernel))
            blocks.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*blocks)
        self.num_features = chs
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(chs, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone: ``N x 3 x H x W`` -> ``N x num_features x H/32 x W/32``."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N x num_classes`` (apply softmax for probabilities)."""
        features = self.pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(features))


def layer_table(model: AECNN, input_size: tuple[int, int] = (224, 224)) -> list[dict]:
    """The model's stage table as rows (stage, block, channels, stride, depth, attention, output
    size) measured by running a dummy input through it, so the table cannot drift from the code."""
    rows = []
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, *input_size, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = model.stem(x)
        rows.append({"stage": "stem", "block": "conv3x3 + BN + ReLU", "channels": x.shape[1],
                     "stride": 2, "depth": 1, "attention": "-",
                     "output": f"{x.shape[2]}x{x.shape[3]}"})
        for i, stage in enumerate(model.stages, start=1):
            convs = [m for m in stage if isinstance(m, DepthwiseSeparableConv)]
            fusion = [m for m in stage if isinstance(m, AttentionFusion)]
            x = stage(x)
            rows.append({"stage": str(i), "block": "depthwise-separable", "channels": x.shape[1],
                         "stride": convs[0].depthwise[0].stride[0], "depth": len(convs),
                         "attention": fusion[0].mode if fusion else "-",
                         "output": f"{x.shape[2]}x{x.shape[3]}"})
    rows.append({"stage": "head", "block": "GAP, dropout, linear",
                 "channels": model.num_classes, "stride": "-", "depth": "-", "attention": "-",
                 "output": "1x1"})
    model.train(was_training)
    return rows


def aecnn(num_classes: int = 2, **kwargs) -> AECNN:
    """Factory: the AECNN of the layer tables above (see :class:`AECNN` for the arguments;
    ``layers="base"`` for the first, wider table)."""
    return AECNN(num_classes=num_classes, **kwargs)


def attention_maps(model: AECNN, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Run ``model`` on ``x`` and collect every attention map, keyed by stage.

    Returns ``{"stage3": {"channel": N x C x 1 x 1, "spatial": N x 1 x h x w}, ...}`` (only the
    maps the model's attention mode computes), in eval mode and without gradients.
    """
    maps: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    for i, stage in enumerate(model.stages, start=1):
        for module in stage:
            if not isinstance(module, AttentionFusion):
                continue
            for kind, sub in (("channel", module.ca), ("spatial", module.sa)):
                if sub is None:
                    continue

                def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor, key: str = f"stage{i}",
                         kind: str = kind) -> None:
                    maps.setdefault(key, {})[kind] = out.detach()

                handles.append(sub.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return maps
