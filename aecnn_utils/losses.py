"""Class-imbalance losses of AECNN: weighted cross-entropy, focal loss and their sum (Eq. 5-6).

The paper ("Loss Function and Optimization", section 3) trains with

.. math::

    L_{total} = \\lambda_1 L_w + \\lambda_2 L_f                      \\qquad (5)

    L_f = -\\alpha_i (1 - p_i)^\\gamma \\log(p_i)                      \\qquad (6)

where :math:`L_w` is cross-entropy with per-class weights, :math:`p_i` the softmax probability
of the true class of sample :math:`i`, :math:`\\alpha_i` a per-class weight of that class and
:math:`\\gamma \\ge 0` the focusing parameter of Lin et al. (ICCV 2017). Here
``lambda_w`` is :math:`\\lambda_1`, ``lambda_f`` is :math:`\\lambda_2`, ``alpha`` is
:math:`\\alpha` and ``gamma`` is :math:`\\gamma`.

* :class:`WeightedCrossEntropy` -- :math:`L_w`, a thin float32 wrapper of ``F.cross_entropy``.
* :class:`FocalLoss` -- :math:`L_f` of Eq. (6) for multi-class softmax outputs.
* :class:`HybridLoss` -- :math:`L_{total}` of Eq. (5); :meth:`HybridLoss.from_counts` builds the
  class weights from training-set class counts (:func:`class_weights`, :func:`class_counts`).
* :func:`build_loss` -- factory by name (``"hybrid"``, ``"focal"``, ``"weighted_ce"``, ``"ce"``).

Notes on the paper and the defaults chosen here:

* The paper gives no values for :math:`\\lambda_1, \\lambda_2`; we default to
  :math:`\\lambda_1 = \\lambda_2 = 1`. It gives no :math:`\\gamma` either; we default to
  :math:`\\gamma = 2`, the value recommended by Lin et al.
* ``alpha`` defaults to ``None`` (no per-class factor in :math:`L_f`): the class weights already
  enter through :math:`L_w`, and weighting by class in both terms counts the imbalance twice.
  Pass ``alpha=`` (or ``alpha_from_counts=True`` in :meth:`HybridLoss.from_counts`) to turn it on.
* "Theorem 1" and its gradient (Eq. 7, :math:`\\partial L_f / \\partial p_i \\propto
  (1 - p_i)^{\\gamma - 1}`) are a proof sketch, not a proof: the exact derivative is
  :math:`\\partial L_f / \\partial p =
  \\alpha [\\gamma (1-p)^{\\gamma-1} \\log p - (1-p)^\\gamma / p]`, and the claimed
  strict reduction of the minority error rate is not established. This module implements the
  losses of Eq. (5)-(6); it makes no claim about Eq. (7).

All losses cast the logits to float32 before ``log_softmax``, so they are safe with bf16/fp16
logits produced under ``torch.autocast``, and return float32 values. Inputs are validated
(logits ``(N, C)``, integer targets ``(N,)`` in ``[0, C)`` or ``ignore_index``); the target-range
check runs for CPU tensors only, so that accelerator steps never wait for a host read-back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LOSS_NAMES",
    "REDUCTIONS",
    "WEIGHT_METHODS",
    "FocalLoss",
    "HybridLoss",
    "WeightedCrossEntropy",
    "build_loss",
    "class_counts",
    "class_weights",
]

REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
WEIGHT_METHODS: tuple[str, ...] = ("inverse", "effective", "none")
LOSS_NAMES: tuple[str, ...] = ("ce", "focal", "hybrid", "weighted_ce")

TensorLike = torch.Tensor | Sequence[float] | np.ndarray
CountsLike = Sequence[int] | torch.Tensor | np.ndarray


# --------------------------------------------------------------------------- validation helpers


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    return reduction


def _as_weight_tensor(values: TensorLike | None, name: str) -> torch.Tensor | None:
    """A 1-D, finite, non-negative float32 tensor (or None) for a per-class weight vector."""
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        w = values.detach().clone().to(torch.float32)
    else:
        w = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence with one weight per class, "
                         f"got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} must be finite, got {w.tolist()}")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative, got {w.tolist()}")
    return w


def _check_weight_length(weight: torch.Tensor | None, num_classes: int, name: str) -> None:
    if weight is not None and weight.numel() != num_classes:
        raise ValueError(f"{name} has {weight.numel()} entries but the logits have "
                         f"{num_classes} classes; give one weight per class")


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Validate logits ``(N, C)`` floating and target ``(N,)`` integer in ``[0, C)``."""
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("logits and target must be torch.Tensor, got "
                        f"{type(logits).__name__} and {type(target).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, C), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(f"target must have shape (N,) = ({logits.shape[0]},) matching the "
                         f"logits, got {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    num_classes = logits.shape[1]
    if num_classes < 1:
        raise ValueError("logits must have at least one class column")
    if target.device.type != "cpu":
        # Reading targets back would stall the GPU every step; out-of-range targets still fail
        # there (cross-entropy's device-side assert), and the trainer checks labels up front.
        return
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        values = sorted(set(target[bad].tolist()))
        raise ValueError(f"target values {values[:10]} are outside [0, {num_classes}) "
                         f"(ignore_index={ignore_index}); the logits have {num_classes} classes")


def _check_nonneg_finite(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


# --------------------------------------------------------------------------- class weights


def _as_counts(counts: CountsLike) -> torch.Tensor:
    if isinstance(counts, torch.Tensor):
        raw = counts.detach().cpu()
    else:
        raw = torch.as_tensor(np.asarray(counts))
    if raw.dim() != 1 or raw.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence (one count per class), "
                         f"got shape {tuple(raw.shape)}")
    if raw.dtype == torch.bool or raw.is_complex():
        raise ValueError(f"counts must be integers, got dtype {raw.dtype}")
    if raw.is_floating_point():
        if not torch.isfinite(raw).all() or (raw != raw.round()).any():
            raise ValueError(f"counts must be whole numbers, got {raw.tolist()}")
    out = raw.to(torch.int64)
    negative = (out < 0).nonzero().flatten().tolist()
    if negative:
        raise ValueError(f"counts must be >= 0; class(es) {negative} have negative counts "
                         f"{out[negative].tolist()}")
    return out


def class_counts(labels: CountsLike, num_classes: int) -> torch.Tensor:
    """Number of samples per class, ``bincount`` with ``minlength=num_classes`` (int64, CPU).

    Args:
        labels: integer class labels of the training set, each in ``[0, num_classes)``.
        num_classes: number of classes :math:`C`; classes with no sample get a count of 0.

    Raises:
        ValueError: ``num_classes < 1``, labels not 1-D integers, or a label outside the range.
    """
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if isinstance(labels, torch.Tensor):
        lab = labels.detach().cpu()
    else:
        arr = np.asarray(labels)
        lab = torch.tensor(arr.astype(np.int64) if arr.size == 0 else arr)  # a copy
    if lab.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(lab.shape)}")
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    lab = lab.to(torch.int64)
    bad = (lab < 0) | (lab >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"labels {sorted(set(lab[bad].tolist()))[:10]} are outside "
                         f"[0, {num_classes})")
    return torch.bincount(lab, minlength=int(num_classes))


def class_weights(
    counts: CountsLike,
    method: str = "inverse",
    beta: float = 0.999,
    normalize: bool = True,
) -> torch.Tensor:
    """Per-class weights from training-set class frequencies (for :math:`L_w` or :math:`\\alpha`).

    Args:
        counts: number of training samples :math:`n_c` of each class ``c`` (see
            :func:`class_counts`).
        method: ``"inverse"``: :math:`w_c \\propto 1 / n_c`; ``"effective"``: the effective
            number of samples of Cui et al. (CVPR 2019),
            :math:`w_c \\propto (1 - \\beta) / (1 - \\beta^{n_c})`; ``"none"``: all ones.
        beta: :math:`\\beta \\in [0, 1)` of the effective number (only for ``"effective"``).
            :math:`\\beta \\to 1` approaches inverse frequency, :math:`\\beta = 0` is uniform.
        normalize: scale the weights so they sum to the number of classes :math:`C` (the
            convention of Cui et al.; the mean weight is then 1). With ``False`` the raw
            formula values are returned.

    Returns:
        float32 tensor of shape ``(C,)`` on the CPU.

    Raises:
        ValueError: unknown ``method``, ``beta`` outside ``[0, 1)``, negative or non-integer
            counts, or (for ``"inverse"``/``"effective"``) a class with zero samples.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"unknown class-weight method {method!r}; valid: {list(WEIGHT_METHODS)}")
    beta = float(beta)
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = _as_counts(counts)
    num_classes = n.numel()
    if method == "none":
        return torch.ones(num_classes, dtype=torch.float32)
    zero = (n == 0).nonzero().flatten().tolist()
    if zero:
        raise ValueError(f"class(es) {zero} have 0 training samples: the training set lacks "
                         f"them, so {method!r} class weights are undefined; check the split or "
                         "drop the class")
    nf = n.to(torch.float64)
    if method == "inverse":
        w = 1.0 / nf
    else:
        # 1 - beta^n computed as -expm1(n log beta) for precision when beta is close to 1.
        log_beta = math.log(beta) if beta > 0 else -math.inf
        w = (1.0 - beta) / (-torch.expm1(nf * log_beta))
    if normalize:
        w = w * (num_classes / w.sum())
    return w.to(torch.float32)


# --------------------------------------------------------------------------- losses


class FocalLoss(nn.Module):
    """Multi-class softmax focal loss :math:`L_f = -\\alpha_y (1 - p_y)^\\gamma \\log p_y`, Eq. (6).

    :math:`p_y` is the softmax probability of the true class :math:`y`; :math:`\\log p_y` comes
    from ``F.log_softmax`` of the float32 logits and :math:`1 - p_y` from ``-expm1(log p_y)``,
    so the loss and its gradient stay finite for extreme logits. With ``gamma=0`` and
    ``alpha=None`` it is exactly ``F.cross_entropy``.

    Args:
        alpha: per-class weights :math:`\\alpha` of Eq. (6), shape ``(C,)``, or ``None`` for
            :math:`\\alpha_y = 1`. Stored as a buffer (moves with ``.to(device)``).
        gamma: focusing parameter :math:`\\gamma \\ge 0` of Eq. (6); 2 as in Lin et al. (2017).
        reduction: ``"none"`` (per-sample, shape ``(N,)``), ``"mean"`` or ``"sum"``.
        ignore_index: target value that contributes nothing (0 in ``"none"``) and is excluded
            from the ``"mean"`` denominator, like ``F.cross_entropy``.

    Reduction convention: ``"mean"`` is
    :math:`\\frac{1}{N_{valid}} \\sum_i \\alpha_{y_i} (1 - p_i)^\\gamma (-\\log p_i)`, i.e. the
    plain mean over the (non-ignored) samples -- not over samples x classes, and *not* the
    weighted mean :math:`\\sum_i \\alpha_{y_i} \\ell_i / \\sum_i \\alpha_{y_i}` that
    ``F.cross_entropy(weight=...)`` uses. Lin et al. normalise the focal loss by a count of
    samples, not by the sum of weights, so here :math:`\\alpha` acts as a true multiplicative
    weight (scaling ``alpha`` by ``k`` scales the loss by ``k``); with ``gamma=0`` the ``"none"``
    and ``"sum"`` reductions equal those of ``F.cross_entropy(weight=alpha)``. A batch with no
    valid target gives 0 for ``"mean"`` (``F.cross_entropy`` gives NaN).

    Shape:
        logits ``(N, C)`` floating (any dtype; computed in float32), target ``(N,)`` integer.
        Output: float32 scalar, or ``(N,)`` with ``reduction="none"``.
    """

    alpha: torch.Tensor | None

    def __init__(
        self,
        alpha: torch.Tensor | Sequence[float] | None = None,
        gamma: float = 2.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        gamma = float(gamma)
        if not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
        self.gamma = gamma
        self.reduction = _check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        self.register_buffer("alpha", _as_weight_tensor(alpha, "alpha"))

    def extra_repr(self) -> str:
        a = None if self.alpha is None else [round(v, 4) for v in self.alpha.tolist()]
        return (f"alpha={a}, gamma={self.gamma}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.ignore_index)
        _check_weight_length(self.alpha, logits.shape[1], "alpha")
        logits = logits.float()
        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target)).long()

        log_p = F.log_softmax(logits, dim=1)
        log_p_y = log_p.gather(1, safe_target.unsqueeze(1)).squeeze(1)
        loss = -log_p_y
        if self.gamma != 0.0:
            # 1 - p_y accurately near p_y = 1; the clamp keeps d/dx x^gamma finite at x = 0
            # for 0 < gamma < 1 (the clamped points have zero loss and zero gradient anyway).
            one_minus_p = (-torch.expm1(log_p_y)).clamp_min(torch.finfo(torch.float32).tiny)
            loss = one_minus_p.pow(self.gamma) * loss
        if self.alpha is not None:
            alpha = self.alpha.to(device=logits.device, dtype=torch.float32)
            loss = alpha[safe_target] * loss
        loss = torch.where(valid, loss, torch.zeros_like(loss))

        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / valid.sum().clamp_min(1).to(loss.dtype)


class WeightedCrossEntropy(nn.Module):
    """Class-weighted cross-entropy :math:`L_w` of Eq. (5): a float32 ``F.cross_entropy``.

    Args:
        weight: per-class weights :math:`w_c`, shape ``(C,)`` (e.g. from
            :func:`class_weights`), or ``None`` for plain cross-entropy. Stored as a buffer.
        label_smoothing: in ``[0, 1]``, as in ``F.cross_entropy``.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``. ``"mean"`` follows ``F.cross_entropy``:
            the *weighted* mean :math:`\\sum_i w_{y_i} \\ell_i / \\sum_i w_{y_i}`, so the overall
            scale of ``weight`` does not matter (unlike :class:`FocalLoss`'s ``alpha``). A batch
            with no valid target gives 0 instead of NaN.
        ignore_index: target value excluded from the loss and from the mean.

    Shape:
        logits ``(N, C)`` floating (computed in float32), target ``(N,)`` integer.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        label_smoothing = float(label_smoothing)
        if not (0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.reduction = _check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        self.register_buffer("weight", _as_weight_tensor(weight, "weight"))

    def extra_repr(self) -> str:
        w = None if self.weight is None else [round(v, 4) for v in self.weight.tolist()]
        return (f"weight={w}, label_smoothing={self.label_smoothing}, "
                f"reduction={self.reduction!r}, ignore_index={self.ignore_index}")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, target, self.ignore_index)
        _check_weight_length(self.weight, logits.shape[1], "weight")
        logits = logits.float()
        weight = None
        if self.weight is not None:
            weight = self.weight.to(device=logits.device, dtype=torch.float32)
        reduction = self.reduction
        if reduction == "mean" and not bool((target != self.ignore_index).any()):
            reduction = "sum"  # all targets ignored (or empty batch): 0 with a graph, not NaN
        return F.cross_entropy(logits, target.long(), weight=weight, reduction=reduction,
                               ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)


class HybridLoss(nn.Module):
    """:math:`L_{total} = \\lambda_1 L_w + \\lambda_2 L_f` of Eq. (5).

    :math:`L_w` is :class:`WeightedCrossEntropy` and :math:`L_f` is :class:`FocalLoss` (Eq. 6).

    Args:
        class_weight: per-class weights of :math:`L_w`, shape ``(C,)``, or ``None``
            (unweighted CE). See :meth:`from_counts` to build them from class counts.
        alpha: per-class :math:`\\alpha` of :math:`L_f`; ``None`` by default so that the class
            imbalance is not weighted twice (it already enters through ``class_weight``).
        gamma: focusing parameter :math:`\\gamma` of Eq. (6); default 2 (Lin et al.).
        lambda_w: :math:`\\lambda_1` of Eq. (5), default 1 (the paper gives no value).
        lambda_f: :math:`\\lambda_2` of Eq. (5), default 1 (the paper gives no value).
        label_smoothing: label smoothing of :math:`L_w` only (Eq. 6 has no smoothed form).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``, applied to both terms (each term keeps
            its own ``"mean"`` convention, see :class:`WeightedCrossEntropy` and
            :class:`FocalLoss`; with weights normalised to sum to :math:`C` the two are on the
            same scale).
        ignore_index: target value ignored by both terms.

    ``forward`` returns :math:`L_{total}`; :meth:`components` returns the two terms and the
    total (with their autograd graph; call ``.detach()``/``.item()`` to log them).
    """

    def __init__(
        self,
        class_weight: torch.Tensor | Sequence[float] | None = None,
        alpha: torch.Tensor | Sequence[float] | None = None,
        gamma: float = 2.0,
        lambda_w: float = 1.0,
        lambda_f: float = 1.0,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.lambda_w = _check_nonneg_finite(lambda_w, "lambda_w")
        self.lambda_f = _check_nonneg_finite(lambda_f, "lambda_f")
        if self.lambda_w == 0.0 and self.lambda_f == 0.0:
            raise ValueError("lambda_w and lambda_f are both 0: the loss would be identically "
                             "zero; set at least one of them > 0")
        self.reduction = _check_reduction(reduction)
        self.weighted_ce = WeightedCrossEntropy(class_weight, label_smoothing=label_smoothing,
                                                reduction=reduction, ignore_index=ignore_index)
        self.focal = FocalLoss(alpha, gamma=gamma, reduction=reduction,
                               ignore_index=ignore_index)

    @classmethod
    def from_counts(
        cls,
        counts: CountsLike,
        method: str = "inverse",
        gamma: float = 2.0,
        lambda_w: float = 1.0,
        lambda_f: float = 1.0,
        alpha_from_counts: bool = False,
        beta: float = 0.999,
        **kw: Any,
    ) -> HybridLoss:
        """Build the loss with ``class_weight = class_weights(counts, method, beta)``.

        Args:
            counts: training-set samples per class :math:`n_c` (see :func:`class_counts`).
            method, beta: passed to :func:`class_weights` (normalised to sum to :math:`C`).
            gamma, lambda_w, lambda_f: as in the constructor.
            alpha_from_counts: also use the same weights as the focal :math:`\\alpha`
                (double-counts the imbalance; off by default).
            **kw: further constructor arguments (``label_smoothing``, ``reduction``,
                ``ignore_index``).
        """
        if "class_weight" in kw or "alpha" in kw:
            raise ValueError("from_counts builds class_weight/alpha from counts; do not pass "
                             "them too (use the constructor for explicit weights)")
        w = class_weights(counts, method=method, beta=beta, normalize=True)
        return cls(class_weight=w, alpha=w.clone() if alpha_from_counts else None, gamma=gamma,
                   lambda_w=lambda_w, lambda_f=lambda_f, **kw)

    def extra_repr(self) -> str:
        return f"lambda_w={self.lambda_w}, lambda_f={self.lambda_f}"

    def components(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"weighted_ce": L_w, "focal": L_f, "total": lambda_w L_w + lambda_f L_f}``."""
        l_w = self.weighted_ce(logits, target)
        l_f = self.focal(logits, target)
        return {"weighted_ce": l_w, "focal": l_f,
                "total": self.lambda_w * l_w + self.lambda_f * l_f}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.lambda_f == 0.0:
            return self.lambda_w * self.weighted_ce(logits, target)
        if self.lambda_w == 0.0:
            return self.lambda_f * self.focal(logits, target)
        return self.components(logits, target)["total"]


# --------------------------------------------------------------------------- factory


def _pop_weight_args(kwargs: dict[str, Any]) -> tuple[str, float]:
    return kwargs.pop("method", "inverse"), kwargs.pop("beta", 0.999)


def build_loss(name: str, counts: CountsLike | None = None, **kwargs: Any) -> nn.Module:
    """Loss module by name, for the trainer.

    Args:
        name: ``"hybrid"`` (:class:`HybridLoss`, Eq. 5), ``"focal"`` (:class:`FocalLoss`,
            Eq. 6), ``"weighted_ce"`` (:class:`WeightedCrossEntropy`) or ``"ce"`` (plain,
            unweighted cross-entropy; ``counts`` is ignored). Case-insensitive, ``-`` = ``_``.
        counts: training-set samples per class. With ``"hybrid"`` and ``"weighted_ce"`` it
            gives the class weights of :math:`L_w`, with ``"focal"`` the :math:`\\alpha`, via
            :func:`class_weights` (``method=``/``beta=`` keywords, default ``"inverse"``).
        **kwargs: constructor arguments of the chosen class (for ``"hybrid"`` with ``counts``,
            those of :meth:`HybridLoss.from_counts`).

    Raises:
        ValueError: unknown name (the message lists the valid ones), or weights given both as
            ``counts`` and explicitly, or ``"weighted_ce"`` with no weights at all.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    kwargs = dict(kwargs)
    if key == "ce":
        return WeightedCrossEntropy(weight=None, **kwargs)
    if key == "hybrid":
        if counts is not None:
            return HybridLoss.from_counts(counts, **kwargs)
        kwargs.pop("method", None)
        kwargs.pop("beta", None)
        return HybridLoss(**kwargs)
    if key == "focal":
        method, beta = _pop_weight_args(kwargs)
        if counts is not None:
            if kwargs.get("alpha") is not None:
                raise ValueError("focal: give either counts= or alpha=, not both")
            kwargs["alpha"] = class_weights(counts, method=method, beta=beta)
        return FocalLoss(**kwargs)
    # weighted_ce
    method, beta = _pop_weight_args(kwargs)
    if counts is not None:
        if kwargs.get("weight") is not None:
            raise ValueError("weighted_ce: give either counts= or weight=, not both")
        kwargs["weight"] = class_weights(counts, method=method, beta=beta)
    if kwargs.get("weight") is None:
        raise ValueError("weighted_ce needs class weights: pass counts= (training-set samples "
                         "per class) or weight=; use 'ce' for unweighted cross-entropy")
    return WeightedCrossEntropy(**kwargs)
