"""Class-imbalance losses of AECNN: weighted cross-entropy, focal loss and their sum (Eq. 5-6).

The paper ("Loss Function and Optimization", section 3) trains with

.. math::

    L_{total} = \\lambda_1 L_w + \\lambda_2 L_f                      \\qquad (5)

    L_f = -\\alpha_i (1 - p_i)^\\gamma \\log(p_i)                      \\qquad (6)

where :math:`L_w` is class-weighted cross-entropy, :math:`p_i` the softmax probability of the
true class of sample :math:`i`, :math:`\\alpha_i` a weight of that class and :math:`\\gamma \\ge 0`
the focusing parameter of Lin et al. (ICCV 2017). The run config fields ``lambda_w``,
``lambda_f``, ``focal_alpha`` and ``gamma`` are :math:`\\lambda_1`, :math:`\\lambda_2`,
:math:`\\alpha` and :math:`\\gamma`; ``loss`` picks one of :data:`LOSS_NAMES` and
``weight_method`` one of :data:`WEIGHT_METHODS` (see :func:`build_loss`).

Notes:

* The paper gives no values for :math:`\\lambda_1, \\lambda_2` or :math:`\\gamma`; the defaults
  are :math:`\\lambda_1 = \\lambda_2 = 1` and :math:`\\gamma = 2` (the value of Lin et al.).
* "Theorem 1" and Eq. (7) are a proof sketch, not a proof: the exact derivative is
  :math:`\\partial L_f / \\partial p =
  \\alpha [\\gamma (1-p)^{\\gamma-1} \\log p - (1-p)^\\gamma / p]`, not
  :math:`\\propto (1-p)^{\\gamma-1}`, and the claimed lower minority error rate is not
  established. This module implements Eq. (5)-(6) only.

All losses cast the logits to float32 before ``log_softmax`` (safe under ``torch.autocast``),
return a float32 scalar and take the mean over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSS_NAMES: tuple[str, ...] = ("ce", "weighted_ce", "focal", "hybrid")
WEIGHT_METHODS: tuple[str, ...] = ("inverse", "effective", "none")

IntsLike = torch.Tensor | np.ndarray | Sequence[int]


def class_counts(labels: IntsLike, num_classes: int) -> torch.Tensor:
    """Training samples per class: an int64 ``bincount`` of ``labels`` of length ``num_classes``."""
    if not isinstance(labels, torch.Tensor):  # a copy: pandas/memmap arrays may be read-only
        labels = torch.from_numpy(np.array(labels, dtype=np.int64))
    labels = labels.to("cpu", torch.int64)
    return torch.bincount(labels, minlength=num_classes)


def class_weights(counts: IntsLike, method: str = "inverse", beta: float = 0.999) -> torch.Tensor:
    """Per-class weights :math:`w_c` from the training-set class counts :math:`n_c`.

    Args:
        counts: samples per class :math:`n_c`, shape ``(C,)`` (see :func:`class_counts`).
        method: ``"inverse"``: :math:`w_c \\propto 1 / n_c`; ``"effective"``: the effective
            number of samples of Cui et al. (CVPR 2019),
            :math:`w_c \\propto (1 - \\beta) / (1 - \\beta^{n_c})`; ``"none"``: all ones.
        beta: :math:`\\beta \\in [0, 1)` of ``"effective"``; :math:`\\beta \\to 1` gives
            ``"inverse"``, :math:`\\beta = 0` uniform weights.

    Returns:
        float32 tensor of shape ``(C,)``, scaled to sum to :math:`C` (Cui et al.).

    Raises:
        ValueError: unknown ``method``, or a class with zero training samples (its
            ``"inverse"``/``"effective"`` weight would be infinite).
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"unknown weight method {method!r}; valid: {', '.join(WEIGHT_METHODS)}")
    n = torch.as_tensor(counts).to("cpu", torch.float64)
    if method == "none":
        return torch.ones(len(n), dtype=torch.float32)
    missing = (n == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"class(es) {missing} have no training samples: the training set lacks them, so "
            f"{method!r} class weights are undefined. Re-split the data so every class is in "
            "the training set, or set weight_method='none'.")
    w = 1.0 / n if method == "inverse" else (1.0 - beta) / (1.0 - beta**n)
    return (w * (len(n) / w.sum())).to(torch.float32)


class _CrossEntropy(nn.Module):
    """:math:`L_w`: ``F.cross_entropy`` on float32 logits with optional class weights.

    With weights the mean is ``F.cross_entropy``'s weighted mean
    :math:`\\sum_i w_{y_i} \\ell_i / \\sum_i w_{y_i}`.
    """

    weight: torch.Tensor | None

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight)


class FocalLoss(nn.Module):
    """Softmax focal loss :math:`L_f = -\\alpha_y (1 - p_y)^\\gamma \\log p_y` of Eq. (6).

    The loss of Lin et al. (2017), https://arxiv.org/abs/1708.02002, for :math:`C` classes.
    The mean is the plain mean over samples, :math:`\\frac{1}{N} \\sum_i L_{f,i}`, as in Lin et
    al. (not ``F.cross_entropy``'s weighted mean), so ``alpha`` is a true multiplicative weight.
    With ``gamma=0`` and ``alpha=None`` this is ``F.cross_entropy``.

    Args:
        alpha: per-class weights :math:`\\alpha`, shape ``(C,)``, or ``None`` for
            :math:`\\alpha_y = 1`. Stored as a buffer.
        gamma: focusing parameter :math:`\\gamma \\ge 0`; 2 as in Lin et al.

    Shape:
        logits ``(N, C)`` (any float dtype, computed in float32), target ``(N,)`` class
        indices. Output: float32 scalar.
    """

    alpha: torch.Tensor | None

    def __init__(self, alpha: torch.Tensor | None = None, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha).float())

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        # 1 - p from expm1 stays accurate near p = 1; the clamp keeps the gradient of
        # x ** gamma finite at x = 0 for gamma < 1 (those samples have zero loss anyway).
        one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(torch.float32).tiny)
        loss = -one_minus_p.pow(self.gamma) * log_p
        if self.alpha is not None:
            loss = self.alpha[target] * loss
        return loss.mean()


class HybridLoss(nn.Module):
    """:math:`L_{total} = \\lambda_1 L_w + \\lambda_2 L_f` of Eq. (5).

    Args:
        class_weight: per-class weights of the cross-entropy :math:`L_w`, shape ``(C,)``
            (see :func:`class_weights`), or ``None`` for unweighted cross-entropy.
        alpha: per-class :math:`\\alpha` of the focal term :math:`L_f` (Eq. 6), or ``None``.
        gamma: :math:`\\gamma` of Eq. (6).
        lambda_w: :math:`\\lambda_1`; the paper gives no value.
        lambda_f: :math:`\\lambda_2`; the paper gives no value.

    :math:`L_w` is averaged like ``F.cross_entropy`` (weighted mean), :math:`L_f` like
    :class:`FocalLoss` (plain mean); with weights summing to :math:`C` both are on one scale.
    """

    def __init__(
        self,
        class_weight: torch.Tensor | None = None,
        alpha: torch.Tensor | None = None,
        gamma: float = 2.0,
        lambda_w: float = 1.0,
        lambda_f: float = 1.0,
    ) -> None:
        super().__init__()
        self.lambda_w = float(lambda_w)
        self.lambda_f = float(lambda_f)
        self.weighted_ce = _CrossEntropy(class_weight)
        self.focal = FocalLoss(alpha, gamma)

    def extra_repr(self) -> str:
        return f"lambda_w={self.lambda_w}, lambda_f={self.lambda_f}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.lambda_w * self.weighted_ce(logits, target)
                + self.lambda_f * self.focal(logits, target))


def _focal_alpha(focal_alpha: float | str | None, counts: IntsLike,
                 weight_method: str) -> torch.Tensor | None:
    if focal_alpha is None:
        return None
    if focal_alpha == "weights":
        return class_weights(counts, weight_method)
    a = float(focal_alpha)
    if len(counts) != 2:
        raise ValueError(
            f"focal_alpha={a}: a float alpha needs the binary scheme (2 classes: normal, "
            f"abnormal), but there are {len(counts)} classes; use focal_alpha=None or 'weights'")
    return torch.tensor([1.0 - a, a], dtype=torch.float32)


def build_loss(
    name: str,
    counts: IntsLike,
    *,
    gamma: float = 2.0,
    lambda_w: float = 1.0,
    lambda_f: float = 1.0,
    weight_method: str = "inverse",
    focal_alpha: float | str | None = None,
) -> nn.Module:
    """The loss of the run config: ``build_loss(config.loss, counts, gamma=config.gamma, ...)``.

    Args:
        name: ``"ce"`` (plain cross-entropy, ``counts`` unused), ``"weighted_ce"`` (:math:`L_w`
            with ``class_weights(counts, weight_method)``), ``"focal"`` (:math:`L_f`, Eq. 6) or
            ``"hybrid"`` (:math:`\\lambda_1 L_w + \\lambda_2 L_f`, Eq. 5).
        counts: training-set samples per class, shape ``(C,)`` (see :func:`class_counts`).
        gamma: :math:`\\gamma` of Eq. (6).
        lambda_w, lambda_f: :math:`\\lambda_1, \\lambda_2` of Eq. (5) (``"hybrid"`` only).
        weight_method: one of :data:`WEIGHT_METHODS`, for :math:`L_w` (and ``"weights"`` alpha).
        focal_alpha: :math:`\\alpha` of Eq. (6) for ``"focal"`` and ``"hybrid"``. ``None``
            (default): :math:`\\alpha_i = 1` -- the class imbalance already enters through
            :math:`L_w`, and weighting both terms by class counts it twice. ``"weights"``: the
            class weights of :math:`L_w`. A float :math:`a \\in [0, 1]`: binary scheme only,
            :math:`\\alpha = (1 - a, a)`, i.e. weight :math:`a` on class 1 ("abnormal"), as in
            Lin et al.'s :math:`\\alpha`-balanced focal loss.

    Raises:
        ValueError: unknown ``name``; a float ``focal_alpha`` with more than 2 classes; a class
            with no training samples when class weights are needed (see :func:`class_weights`).
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSS_NAMES)}")
    if name == "ce":
        return _CrossEntropy()
    if name == "weighted_ce":
        return _CrossEntropy(class_weights(counts, weight_method))
    alpha = _focal_alpha(focal_alpha, counts, weight_method)
    if name == "focal":
        return FocalLoss(alpha, gamma)
    return HybridLoss(class_weights(counts, weight_method), alpha, gamma, lambda_w, lambda_f)
