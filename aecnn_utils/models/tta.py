"""Test-time augmentation as a module: a classifier's logits averaged over flips of its input.

The one implementation that evaluation (:func:`aecnn_utils.training.runs.predict_logits`) and
the exported ONNX graph (:class:`aecnn_utils.deploy.export.ProbabilityModel`) both use.
"""

from __future__ import annotations

import torch
from torch import nn

#: The flips a cell has no preferred orientation for (dims of NCHW): none, horizontal,
#: vertical, both.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


class FlipTTA(nn.Module):
    """``model``'s logits averaged over :data:`TTA_FLIPS` of the input, in one batched call
    over the four views."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logits ``N x C`` of the flipped views of a ``N x 3 x S x S`` batch."""
        views = torch.cat([x.flip(dims) if dims else x for dims in TTA_FLIPS])
        logits = self.model(views).float()
        return logits.reshape(len(TTA_FLIPS), -1, logits.shape[-1]).mean(0)
