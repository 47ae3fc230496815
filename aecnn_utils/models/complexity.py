"""Model size and cost: parameters and multiply-accumulates (MACs) at a given input size.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
floating-point operations of convolutions and matrix products (2 per multiply-accumulate) and
ignores element-wise work (activations, batch norm, attention products, pooling), the same
convention as torchvision's published "GFLOPS" column, which are in fact GMACs. We report MACs
and call them MACs.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
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


def complexity_table(names: Iterable[str], input_size: int = 224,
                     num_classes: int = 2) -> pd.DataFrame:
    """One row per model: parameters (M) and GMACs at ``input_size``, plus ratios to AECNN."""
    from . import build_model

    rows = []
    for name in names:
        model = build_model(name, num_classes)
        rows.append({"model": name, "params_M": count_params(model) / 1e6,
                     "GMACs": count_macs(model, input_size) / 1e9,
                     "input": f"{input_size}x{input_size}"})
    table = pd.DataFrame(rows)
    if "aecnn" in set(table["model"]):
        ref = table.set_index("model").loc["aecnn"]
        table["params_x_aecnn"] = table["params_M"] / ref["params_M"]
        table["GMACs_x_aecnn"] = table["GMACs"] / ref["GMACs"]
    return table
