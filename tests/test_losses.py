"""Tests of aecnn_utils.training.losses: focal loss (Eq. 6), weighted CE and the hybrid loss (Eq.
5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aecnn_utils.training.losses import (
    LOSS_NAMES,
    FocalLoss,
    HybridLoss,
    build_loss,
    class_counts,
    class_weights,
)

N, C = 32, 5
COUNTS = [40, 30, 20, 8, 2]


def _data(seed: int = 0, n: int = N, c: int = C, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * scale).requires_grad_(True)
    target = torch.randint(0, c, (n,), generator=g)
    return logits, target


def _eq6(logits: torch.Tensor, target: torch.Tensor, gamma: float,
         alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (6) written out in float64: mean_i -alpha_i (1 - p_i)^gamma log p_i."""
    p = torch.softmax(logits.detach().double(), dim=1)[torch.arange(len(target)), target]
    a = torch.ones_like(p) if alpha is None else alpha.double()[target]
    return (-a * (1 - p) ** gamma * torch.log(p)).mean()


# --------------------------------------------------------------------------- focal loss


def test_focal_gamma0_equals_cross_entropy() -> None:
    logits, target = _data()
    focal = FocalLoss(gamma=0.0)(logits, target)
    ce = F.cross_entropy(logits, target)
    torch.testing.assert_close(focal, ce)
    (g_focal,) = torch.autograd.grad(focal, logits)
    (g_ce,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(g_focal, g_ce)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_focal_matches_eq6(gamma: float, with_alpha: bool) -> None:
    logits, target = _data(1)
    alpha = torch.linspace(0.2, 1.8, C) if with_alpha else None
    out = FocalLoss(alpha=alpha, gamma=gamma)(logits, target)
    assert out.dtype == torch.float32 and out.dim() == 0
    torch.testing.assert_close(out.double(), _eq6(logits, target, gamma, alpha))


def test_focal_down_weights_easy_examples() -> None:
    gamma = 2.0
    target = torch.tensor([0])
    easy = torch.tensor([[4.0, 0.0, 0.0]])  # confident and correct, p ~ 0.96
    hard = torch.tensor([[0.0, 4.0, 0.0]])  # confident and wrong, p ~ 0.02
    for logits, small in ((easy, True), (hard, False)):
        p = torch.softmax(logits, 1)[0, 0]
        ce = F.cross_entropy(logits, target)
        focal = FocalLoss(gamma=gamma)(logits, target)
        torch.testing.assert_close(focal, ce * (1 - p) ** gamma)
        assert (focal < 0.01 * ce) if small else (focal > 0.9 * ce)


def test_focal_finite_for_extreme_logits() -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    target = torch.tensor([0, 0])  # p == 1 exactly, and p == 0
    for gamma in (0.0, 0.5, 2.0):
        loss = FocalLoss(gamma=gamma)(logits, target)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        torch.testing.assert_close(loss, torch.tensor(1e4))  # (0 + 2e4) / 2


def test_focal_alpha_is_buffer() -> None:
    loss = FocalLoss(alpha=torch.tensor([1.0, 2.0]))
    assert dict(loss.named_buffers())["alpha"].dtype == torch.float32
    assert FocalLoss().alpha is None


# --------------------------------------------------------------------------- hybrid loss


@pytest.mark.parametrize("lambda_w,lambda_f", [(1.0, 1.0), (0.3, 2.0), (0.0, 1.5), (2.0, 0.0)])
def test_hybrid_is_weighted_sum(lambda_w: float, lambda_f: float) -> None:
    logits, target = _data(2)
    w = class_weights(COUNTS)
    alpha = torch.linspace(1.5, 0.5, C)
    hybrid = HybridLoss(class_weight=w, alpha=alpha, gamma=2.0, lambda_w=lambda_w,
                        lambda_f=lambda_f)
    l_w = F.cross_entropy(logits, target, weight=w)
    l_f = _eq6(logits, target, 2.0, alpha).float()
    torch.testing.assert_close(hybrid(logits, target), lambda_w * l_w + lambda_f * l_f)


def test_hybrid_defaults() -> None:
    logits, target = _data(3)
    out = HybridLoss()(logits, target)
    expected = F.cross_entropy(logits, target) + _eq6(logits, target, 2.0).float()
    torch.testing.assert_close(out, expected)


# --------------------------------------------------------------------------- class weights


def test_class_counts() -> None:
    counts = class_counts(np.array([0, 2, 2, 1, 2]), 4)
    assert counts.dtype == torch.int64 and counts.tolist() == [1, 1, 3, 0]
    assert class_counts(torch.tensor([1, 1]), 3).tolist() == [0, 2, 0]


def test_class_weights_known_values() -> None:
    w = class_weights([10, 30])
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(class_weights(torch.tensor([10, 30]), "none"), torch.ones(2))
    # effective number, beta = 0.9: (0.1 / (1 - 0.9^10), 0.1 / (1 - 0.9^30)), scaled to sum 2
    raw = np.array([0.1 / (1 - 0.9**10), 0.1 / (1 - 0.9**30)])
    eff = class_weights(np.array([10, 30]), "effective", beta=0.9)
    torch.testing.assert_close(eff, torch.tensor(2 * raw / raw.sum(), dtype=torch.float32))
    torch.testing.assert_close(eff, torch.tensor([1.1904, 0.8096]), atol=1e-4, rtol=0)


def test_class_weights_sum_to_c_and_rank_rare_classes_higher() -> None:
    for method in ("inverse", "effective"):
        w = class_weights(COUNTS, method)
        torch.testing.assert_close(w.sum(), torch.tensor(float(C)))
        assert (w[1:] > w[:-1]).all()


def test_effective_approaches_inverse() -> None:
    inverse = class_weights(COUNTS, "inverse")
    gaps = [(class_weights(COUNTS, "effective", beta=b) - inverse).abs().max().item()
            for b in (0.9, 0.99, 0.999, 0.99999)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3
    torch.testing.assert_close(class_weights(COUNTS, "effective", beta=0.0), torch.ones(C))


def test_zero_count_error_names_the_class() -> None:
    for method in ("inverse", "effective"):
        with pytest.raises(ValueError, match=r"class\(es\) \[1, 3\].*training set lacks them"):
            class_weights([5, 0, 4, 0], method)
    assert class_weights([5, 0], "none").tolist() == [1.0, 1.0]
    for name in ("weighted_ce", "hybrid"):
        with pytest.raises(ValueError, match=r"\[2\].*lacks.*weight_method='none'"):
            build_loss(name, [5, 3, 0])
    build_loss("ce", [5, 3, 0])  # no class weights needed
    build_loss("focal", [5, 3, 0])
    with pytest.raises(ValueError, match="unknown weight method 'sqrt'"):
        class_weights([5, 1], "sqrt")


# --------------------------------------------------------------------------- build_loss


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_build_loss_finite_and_backpropagates(name: str) -> None:
    logits, target = _data(4)
    loss = build_loss(name, class_counts(target, C), gamma=1.5, lambda_w=0.5, lambda_f=2.0)
    out = loss(logits, target)
    assert out.dim() == 0 and torch.isfinite(out) and out > 0
    out.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_build_loss_float16_logits_give_float32(name: str) -> None:
    logits, target = _data(5)
    half = logits.detach().half()
    out = build_loss(name, COUNTS)(half, target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, build_loss(name, COUNTS)(logits, target), rtol=1e-2,
                               atol=1e-2)


def test_build_loss_values() -> None:
    logits, target = _data(6)
    w = class_weights(COUNTS, "effective")
    torch.testing.assert_close(build_loss("ce", COUNTS)(logits, target),
                               F.cross_entropy(logits, target))
    torch.testing.assert_close(
        build_loss("weighted_ce", COUNTS, weight_method="effective")(logits, target),
        F.cross_entropy(logits, target, weight=w))
    torch.testing.assert_close(build_loss("focal", COUNTS, gamma=3.0)(logits, target).double(),
                               _eq6(logits, target, 3.0))
    hybrid = build_loss("hybrid", COUNTS, gamma=1.0, lambda_w=0.7, lambda_f=0.2,
                        weight_method="effective")
    assert isinstance(hybrid, HybridLoss)
    torch.testing.assert_close(hybrid(logits, target),
                               0.7 * F.cross_entropy(logits, target, weight=w)
                               + 0.2 * _eq6(logits, target, 1.0).float())


@pytest.mark.parametrize("name", ["focal", "hybrid"])
def test_build_loss_focal_alpha(name: str) -> None:
    def focal_of(loss) -> FocalLoss:
        return loss if name == "focal" else loss.focal

    assert focal_of(build_loss(name, COUNTS)).alpha is None  # default: alpha_i = 1
    for method in ("inverse", "effective"):
        alpha = focal_of(build_loss(name, COUNTS, weight_method=method,
                                    focal_alpha="weights")).alpha
        torch.testing.assert_close(alpha, class_weights(COUNTS, method))
    binary = build_loss(name, [90, 10], focal_alpha=0.25)
    torch.testing.assert_close(focal_of(binary).alpha, torch.tensor([0.75, 0.25]))
    logits, target = _data(7, c=2)
    torch.testing.assert_close(focal_of(binary)(logits, target).double(),
                               _eq6(logits, target, 2.0, torch.tensor([0.75, 0.25])))
    with pytest.raises(ValueError, match="float alpha needs the binary scheme.*5 classes"):
        build_loss(name, COUNTS, focal_alpha=0.25)


def test_build_loss_unknown_name() -> None:
    with pytest.raises(ValueError,
                       match="unknown loss 'dice'; valid: ce, weighted_ce, focal, hybrid"):
        build_loss("dice", COUNTS)
