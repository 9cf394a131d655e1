"""Adversarial losses against values computed by hand."""

import math

import pytest
import torch

from belamy import losses

R = torch.tensor([2.0, -1.0])  # D(x) logits
F_ = torch.tensor([0.5, -3.0])  # D(G(z)) logits


def sig(t: float) -> float:
    return 1 / (1 + math.exp(-t))


def test_logistic_d_loss_is_binary_cross_entropy():
    expected = -(math.log(sig(2.0)) + math.log(sig(-1.0))) / 2 - (math.log(1 - sig(0.5)) + math.log(1 - sig(-3.0))) / 2
    assert losses.d_logistic(R, F_).item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses():
    # saturating: mean log(1 - D(G(z)))
    assert losses.g_minimax(F_).item() == pytest.approx((math.log(1 - sig(0.5)) + math.log(1 - sig(-3.0))) / 2, rel=1e-6)
    # non-saturating: -mean log D(G(z))
    assert losses.g_nonsaturating(F_).item() == pytest.approx(-(math.log(sig(0.5)) + math.log(sig(-3.0))) / 2, rel=1e-6)
    assert losses.g_least_squares(F_).item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)
    assert losses.g_hinge(F_).item() == pytest.approx(1.25)
    assert losses.g_wasserstein(F_).item() == pytest.approx(1.25)


def test_d_losses():
    assert losses.d_least_squares(R, F_).item() == pytest.approx(0.5 * (((2 - 1) ** 2 + (-1 - 1) ** 2) / 2
                                                                       + (0.25 + 9) / 2))
    # hinge: relu(1 - r) = [0, 2] -> 1; relu(1 + f) = [1.5, 0] -> 0.75
    assert losses.d_hinge(R, F_).item() == pytest.approx(1.75)
    assert losses.d_wasserstein(R, F_).item() == pytest.approx(-1.25 - 0.5)


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    """The reason for the non-saturating loss (Goodfellow et al. 2014, sec. 3): when D rejects fakes confidently,
    d/dlogit log(1 - sigmoid) -> 0 while d/dlogit -log sigmoid -> -1."""
    f = torch.tensor([-10.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.g_minimax(f), f)
    (g_ns,) = torch.autograd.grad(losses.g_nonsaturating(f), f)
    assert abs(g_sat.item()) < 1e-4 and g_ns.item() == pytest.approx(-1.0, abs=1e-4)


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2 exactly."""
    w = torch.tensor([3.0, 4.0])  # |w| = 5
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    alpha = torch.rand(6, 1)
    assert losses.gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(16.0)


def test_r1_of_a_quadratic_critic():
    """D(x) = sum x^2 has gradient 2x: R1 = mean ||2x||^2."""
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0]], requires_grad=True)
    assert losses.r1_penalty((x ** 2).sum(1), x).item() == pytest.approx((4 * 5 + 4 * 9) / 2)


def test_penalties_are_differentiable_for_the_optimizer():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    penalty = losses.gradient_penalty(lambda x: x @ w, torch.randn(4, 2), torch.randn(4, 2), torch.rand(4, 1))
    (grad,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(grad, 2 * (5 - 1) * w.detach() / 5)  # d/dw (|w| - 1)^2


def test_named_losses_registry():
    assert set(losses.LOSSES.names()) == {"minimax", "nonsaturating", "lsgan", "hinge", "wasserstein"}
    with pytest.raises(KeyError, match="Did you mean 'hinge'"):
        losses.LOSSES.get("hnge")
