"""Tests of aecnn_utils.losses: focal loss (Eq. 6), weighted CE and the hybrid loss (Eq. 5).

Modelled on torchvision's focal-loss tests: reductions and gradients against
``F.cross_entropy``, the modulating factor, extreme logits, mixed precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aecnn_utils.losses import (
    LOSS_NAMES,
    FocalLoss,
    HybridLoss,
    WeightedCrossEntropy,
    build_loss,
    class_counts,
    class_weights,
)

N, C = 16, 5
REDUCTIONS = ("none", "mean", "sum")


def _data(seed: int = 0, n: int = N, c: int = C, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * scale).requires_grad_(True)
    target = torch.randint(0, c, (n,), generator=g)
    return logits, target


def _weights(c: int = C) -> torch.Tensor:
    return torch.linspace(0.5, 2.5, c)


def _grad(loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss.sum(), logits)
    return g


# --------------------------------------------------------------------------- focal loss


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_gamma0_equals_cross_entropy(reduction: str) -> None:
    logits, target = _data()
    focal = FocalLoss(gamma=0.0, reduction=reduction)(logits, target)
    ce = F.cross_entropy(logits, target, reduction=reduction)
    torch.testing.assert_close(focal, ce)
    torch.testing.assert_close(_grad(focal, logits), _grad(ce, logits))


def test_focal_le_ce_elementwise_equality_only_at_p1() -> None:
    logits, target = _data(1)
    logits = logits.detach().clone()
    logits[0] = -100.0
    logits[0, target[0]] = 100.0  # p_y == 1 exactly in float32
    ce = F.cross_entropy(logits, target, reduction="none")
    p_y = F.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    for gamma in (0.5, 1.0, 2.0, 5.0):
        focal = FocalLoss(gamma=gamma, reduction="none")(logits, target)
        assert (focal <= ce).all()
        at_one = p_y == 1.0
        assert at_one[0] and at_one.sum() == 1
        assert torch.equal(focal[at_one], ce[at_one]) and (focal[at_one] == 0).all()
        assert (focal[~at_one] < ce[~at_one]).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_focal_ratio_is_modulating_factor(gamma: float, with_alpha: bool) -> None:
    logits, target = _data(2)
    alpha = _weights() if with_alpha else None
    focal = FocalLoss(alpha=alpha, gamma=gamma, reduction="none")(logits, target)
    ce = F.cross_entropy(logits, target, reduction="none")
    p_y = F.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    expected = (1 - p_y) ** gamma
    if with_alpha:
        expected = expected * alpha[target]
    torch.testing.assert_close(focal / ce, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_focal_alpha_is_per_class_weight(reduction: str) -> None:
    logits, target = _data(3)
    w = _weights()
    focal = FocalLoss(alpha=w, gamma=0.0, reduction=reduction)(logits, target)
    ce = F.cross_entropy(logits, target, weight=w, reduction=reduction)
    torch.testing.assert_close(focal, ce)
    torch.testing.assert_close(_grad(focal, logits), _grad(ce, logits))


def test_focal_mean_convention_is_sum_over_n() -> None:
    """"mean" = sum / N (Lin et al.), not F.cross_entropy's sum / sum(w_y)."""
    logits, target = _data(4)
    w = _weights()
    mean = FocalLoss(alpha=w, gamma=2.0, reduction="mean")(logits, target)
    total = FocalLoss(alpha=w, gamma=2.0, reduction="sum")(logits, target)
    torch.testing.assert_close(mean, total / N)
    # with gamma = 0 it differs from the weighted mean of F.cross_entropy by sum(w_y) / N
    mean0 = FocalLoss(alpha=w, gamma=0.0)(logits, target)
    ce_w = F.cross_entropy(logits, target, weight=w)
    torch.testing.assert_close(mean0, ce_w * w[target].sum() / N)
    # alpha is a true multiplicative weight: scaling it scales the loss
    torch.testing.assert_close(FocalLoss(alpha=3 * w)(logits, target), 3 * mean)


def test_focal_ignore_index_excluded_from_mean() -> None:
    logits, target = _data(5)
    target = target.clone()
    target[::3] = -100
    keep = target != -100
    for gamma in (0.0, 2.0):
        loss = FocalLoss(gamma=gamma, alpha=_weights())
        none = FocalLoss(gamma=gamma, alpha=_weights(), reduction="none")(logits, target)
        assert (none[~keep] == 0).all()
        full = loss(logits, target)
        torch.testing.assert_close(full, none[keep].sum() / keep.sum())
        sub = loss(logits[keep], target[keep])
        torch.testing.assert_close(full, sub)
        assert (_grad(full, logits)[~keep] == 0).all()
    # gamma = 0, no alpha: same as F.cross_entropy with ignore_index
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target),
                               F.cross_entropy(logits, target))
    # a custom ignore_index, and all targets ignored -> 0 (not NaN), with a graph
    t = torch.where(keep, target, torch.full_like(target, 7))
    torch.testing.assert_close(FocalLoss(ignore_index=7)(logits, t), FocalLoss()(logits, target))
    all_ignored = FocalLoss()(logits, torch.full_like(target, -100))
    assert all_ignored.item() == 0.0 and all_ignored.requires_grad


@pytest.mark.parametrize("big", [100.0, 1e4])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_numerically_stable(big: float, gamma: float) -> None:
    target = torch.tensor([0, 1, 2, 0])
    logits = torch.tensor([[big, -big, 0.0],     # confident and right: p_y == 1
                           [big, -big, 0.0],     # confidently wrong
                           [-big, big, -big],    # confidently wrong
                           [big, big, -big]], requires_grad=True)
    for loss_fn in (FocalLoss(gamma=gamma, alpha=[1.0, 2.0, 0.5]),
                    FocalLoss(gamma=gamma, reduction="none"),
                    HybridLoss(class_weight=[1.0, 2.0, 0.5], gamma=gamma),
                    WeightedCrossEntropy([1.0, 2.0, 0.5], label_smoothing=0.1)):
        loss = loss_fn(logits, target)
        assert torch.isfinite(loss).all()
        assert torch.isfinite(_grad(loss, logits)).all()
    none = FocalLoss(gamma=gamma, reduction="none")(logits, target)
    assert none[0] == 0
    assert none[1] > 0.9 * 2 * big and none[2] > 0.9 * 2 * big  # wrong: ~ -log p_y, (1-p)^g ~ 1


def test_focal_autocast_bf16() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(8, C)
    x = torch.randn(N, 8)
    target = torch.randint(0, C, (N,))
    for loss_fn in (FocalLoss(alpha=_weights()), HybridLoss(class_weight=_weights()),
                    WeightedCrossEntropy(_weights(), label_smoothing=0.1)):
        ref = loss_fn(lin(x), target)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = lin(x)
            assert logits.dtype == torch.bfloat16
            loss = loss_fn(logits, target)
        assert loss.dtype == torch.float32
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss, ref, rtol=5e-2, atol=5e-2)
        lin.zero_grad()
        loss.backward()
        assert lin.weight.grad is not None
        assert torch.isfinite(lin.weight.grad).all() and lin.weight.grad.abs().sum() > 0


def test_alpha_is_buffer_and_moves() -> None:
    loss = FocalLoss(alpha=[1.0, 2.0])
    assert "alpha" in dict(loss.named_buffers())
    assert loss.alpha.dtype == torch.float32
    loss = loss.to(torch.float64)  # .to() casts buffers; the loss still computes in float32
    out = loss(torch.randn(3, 2, dtype=torch.float64), torch.tensor([0, 1, 1]))
    assert out.dtype == torch.float32
    assert FocalLoss().alpha is None
    assert "weight" in dict(WeightedCrossEntropy([1.0, 2.0]).named_buffers())


# --------------------------------------------------------------------------- weighted CE


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_weighted_ce_matches_torch(reduction: str, label_smoothing: float) -> None:
    logits, target = _data(6)
    w = _weights()
    ours = WeightedCrossEntropy(w, label_smoothing=label_smoothing, reduction=reduction)
    ref = F.cross_entropy(logits, target, weight=w, reduction=reduction,
                          label_smoothing=label_smoothing)
    out = ours(logits, target)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(_grad(out, logits), _grad(ref, logits))
    # ignore_index too
    t = target.clone()
    t[:4] = -100
    torch.testing.assert_close(
        ours(logits, t),
        F.cross_entropy(logits, t, weight=w, reduction=reduction,
                        label_smoothing=label_smoothing))


def test_weighted_ce_all_ignored_is_zero() -> None:
    logits, target = _data(7)
    out = WeightedCrossEntropy(_weights())(logits, torch.full_like(target, -100))
    assert out.item() == 0.0 and out.requires_grad


# --------------------------------------------------------------------------- hybrid loss


@pytest.mark.parametrize("lambda_w,lambda_f", [(1.0, 1.0), (0.3, 2.0), (2.0, 0.5), (0.0, 1.5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hybrid_is_weighted_sum(lambda_w: float, lambda_f: float, reduction: str) -> None:
    logits, target = _data(8)
    w, alpha = _weights(), _weights().flip(0)
    hybrid = HybridLoss(class_weight=w, alpha=alpha, gamma=2.0, lambda_w=lambda_w,
                        lambda_f=lambda_f, label_smoothing=0.05, reduction=reduction)
    l_w = WeightedCrossEntropy(w, label_smoothing=0.05, reduction=reduction)(logits, target)
    l_f = FocalLoss(alpha=alpha, gamma=2.0, reduction=reduction)(logits, target)
    total = hybrid(logits, target)
    torch.testing.assert_close(total, lambda_w * l_w + lambda_f * l_f)
    parts = hybrid.components(logits, target)
    assert set(parts) == {"weighted_ce", "focal", "total"}
    torch.testing.assert_close(parts["weighted_ce"], l_w)
    torch.testing.assert_close(parts["focal"], l_f)
    torch.testing.assert_close(parts["total"], lambda_w * parts["weighted_ce"]
                               + lambda_f * parts["focal"])
    torch.testing.assert_close(parts["total"], total)
    assert parts["total"].requires_grad  # usable for backward; detach to log


def test_hybrid_lambda_f_zero_is_weighted_ce() -> None:
    logits, target = _data(9)
    w = _weights()
    out = HybridLoss(class_weight=w, lambda_f=0.0)(logits, target)
    torch.testing.assert_close(out, F.cross_entropy(logits, target, weight=w))


def test_hybrid_defaults() -> None:
    h = HybridLoss()
    assert h.lambda_w == 1.0 and h.lambda_f == 1.0
    assert h.focal.gamma == 2.0 and h.focal.alpha is None and h.weighted_ce.weight is None
    h = HybridLoss.from_counts([90, 10])
    torch.testing.assert_close(h.weighted_ce.weight, torch.tensor([0.2, 1.8]))
    assert h.focal.alpha is None
    h = HybridLoss.from_counts([90, 10], alpha_from_counts=True, reduction="sum")
    torch.testing.assert_close(h.focal.alpha, h.weighted_ce.weight)
    assert h.reduction == "sum"


def test_hybrid_shifts_optimum_towards_minority() -> None:
    """90/10 toy problem: the class-weighted hybrid loss raises minority recall over plain CE."""
    g = torch.Generator().manual_seed(0)
    n0, n1 = 360, 40
    x = torch.cat([torch.randn(n0, 2, generator=g),
                   torch.randn(n1, 2, generator=g) + torch.tensor([1.5, 1.5])])
    y = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n1, dtype=torch.long)])

    def minority_recall(loss_fn: nn.Module) -> float:
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        # plain full-batch gradient descent (= torch.optim.SGD(lr=0.5), whose first
        # construction imports torch._dynamo and costs about a second)
        for _ in range(200):
            model.zero_grad()
            loss_fn(model(x), y).backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= 0.5 * param.grad
        with torch.no_grad():
            pred = model(x).argmax(1)
        return (pred[y == 1] == 1).float().mean().item()

    counts = class_counts(y, 2)
    assert counts.tolist() == [n0, n1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threading only adds overhead
    try:
        recall_ce = minority_recall(nn.CrossEntropyLoss())
        recall_hybrid = minority_recall(HybridLoss.from_counts(counts))
    finally:
        torch.set_num_threads(threads)
    assert recall_hybrid > recall_ce + 0.15, (recall_ce, recall_hybrid)


# --------------------------------------------------------------------------- class weights


def test_class_counts() -> None:
    assert class_counts([0, 2, 2, 1, 2], 4).tolist() == [1, 1, 3, 0]
    assert class_counts(np.array([1, 1]), 3).dtype == torch.int64
    assert class_counts([], 2).tolist() == [0, 0]
    with pytest.raises(ValueError, match="outside"):
        class_counts([0, 3], 3)


@pytest.mark.parametrize("counts", [[100, 10, 1], np.array([50, 200, 5, 5]),
                                    torch.tensor([7, 3])])
def test_class_weights_inverse(counts) -> None:
    w = class_weights(counts)
    n = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    assert w.dtype == torch.float32 and w.shape == (len(n),)
    torch.testing.assert_close(w.sum(), torch.tensor(float(len(n))))
    torch.testing.assert_close((w.double() * n), (w.double() * n)[0].expand(len(n)))
    raw = class_weights(counts, normalize=False)
    torch.testing.assert_close(raw.double(), 1.0 / n, check_dtype=False)


def test_class_weights_effective_number() -> None:
    counts = [1000, 100, 10, 1]
    n = torch.tensor(counts, dtype=torch.float64)
    for beta in (0.9, 0.99, 0.999):
        raw = class_weights(counts, "effective", beta=beta, normalize=False)
        torch.testing.assert_close(raw.double(), (1 - beta) / (1 - beta ** n),
                                   check_dtype=False)
        w = class_weights(counts, "effective", beta=beta)
        torch.testing.assert_close(w.sum(), torch.tensor(4.0))
        assert (w[1:] > w[:-1]).all()  # rarer classes weigh more
    near_inverse = class_weights(counts, "effective", beta=0.99999)
    torch.testing.assert_close(near_inverse, class_weights(counts, "inverse"), rtol=1e-2,
                               atol=1e-4)
    torch.testing.assert_close(class_weights(counts, "effective", beta=1e-6), torch.ones(4))
    torch.testing.assert_close(class_weights(counts, "effective", beta=0.0), torch.ones(4))
    torch.testing.assert_close(class_weights(counts, "none"), torch.ones(4))


def test_class_weights_errors() -> None:
    with pytest.raises(ValueError, match=r"class\(es\) \[2\].*lacks"):
        class_weights([5, 3, 0, 4])
    with pytest.raises(ValueError, match=r"\[1\].*lacks"):
        class_weights([5, 0], "effective")
    with pytest.raises(ValueError, match="negative"):
        class_weights([5, -1])
    with pytest.raises(ValueError, match="unknown class-weight method"):
        class_weights([5, 1], "sqrt")
    for beta in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="beta"):
            class_weights([5, 1], "effective", beta=beta)
    with pytest.raises(ValueError, match="whole numbers"):
        class_weights([5.5, 1])
    with pytest.raises(ValueError, match="1-D"):
        class_weights([[1, 2]])


# --------------------------------------------------------------------------- bad inputs, factory


def test_bad_inputs_raise_value_error() -> None:
    logits, target = _data(10)
    bad = target.clone()
    bad[0] = C
    for loss_fn in (FocalLoss(), WeightedCrossEntropy(), HybridLoss()):
        with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
            loss_fn(logits, bad)
        with pytest.raises(ValueError, match="outside"):
            loss_fn(logits, torch.full_like(target, -1))
        with pytest.raises(ValueError, match=r"shape \(N, C\)"):
            loss_fn(logits[0], target)
        with pytest.raises(ValueError, match="target must have shape"):
            loss_fn(logits, target[:-1])
        with pytest.raises(ValueError, match="integer"):
            loss_fn(logits, target.float())
    with pytest.raises(ValueError, match="alpha has 3 entries.*5 classes"):
        FocalLoss(alpha=[1.0, 1.0, 1.0])(logits, target)
    with pytest.raises(ValueError, match="weight has 4 entries"):
        WeightedCrossEntropy([1.0] * 4)(logits, target)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        WeightedCrossEntropy(reduction="batchmean")
    with pytest.raises(ValueError, match="non-negative"):
        FocalLoss(alpha=[1.0, -1.0])
    with pytest.raises(ValueError, match="label_smoothing"):
        WeightedCrossEntropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="both 0"):
        HybridLoss(lambda_w=0.0, lambda_f=0.0)
    with pytest.raises(ValueError, match="lambda_f"):
        HybridLoss(lambda_f=-1.0)


def test_build_loss() -> None:
    logits, target = _data(11)
    counts = [40, 30, 20, 8, 2]
    w = class_weights(counts)
    hybrid = build_loss("hybrid", counts=counts, gamma=1.0, lambda_f=0.5)
    assert isinstance(hybrid, HybridLoss) and hybrid.lambda_f == 0.5
    torch.testing.assert_close(hybrid.weighted_ce.weight, w)
    assert isinstance(build_loss("Hybrid"), HybridLoss)
    focal = build_loss("focal", counts=counts, method="effective", beta=0.99)
    torch.testing.assert_close(focal.alpha, class_weights(counts, "effective", beta=0.99))
    assert build_loss("focal").alpha is None
    wce = build_loss("weighted-ce", counts=counts, label_smoothing=0.1)
    torch.testing.assert_close(wce(logits, target),
                               F.cross_entropy(logits, target, weight=w, label_smoothing=0.1))
    ce = build_loss("ce", counts=counts)
    torch.testing.assert_close(ce(logits, target), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="unknown loss 'dice'.*ce, focal, hybrid, weighted_ce"):
        build_loss("dice")
    with pytest.raises(ValueError, match="weighted_ce needs class weights"):
        build_loss("weighted_ce")
    with pytest.raises(ValueError, match="not both"):
        build_loss("focal", counts=counts, alpha=[1.0] * 5)
    assert set(LOSS_NAMES) == {"ce", "focal", "hybrid", "weighted_ce"}
