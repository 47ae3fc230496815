"""Model size and cost: parameters and multiply-accumulates (MACs) at a given input size.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
floating-point operations of convolutions and matrix products (2 per multiply-accumulate) and
ignores element-wise work (activations, batch norm, attention products, pooling), the same
convention as torchvision's published "GFLOPS" column, which are in fact GMACs. We report MACs
and call them MACs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int = 224) -> int:
    """Multiply-accumulates of one forward pass of a single ``3 x S x S`` image."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, input_size, input_size, device=device))
    model.train(was_training)
    return counter.get_total_flops() // 2
