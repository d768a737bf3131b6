import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import d_loss, g_loss


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_minimax_d_loss_matches_hand_computed_value():
    real, fake = [2.0, -1.0], [0.5, -3.0]
    expected = -sum(math.log(sigmoid(x)) for x in real) / 2 - sum(math.log(1 - sigmoid(x)) for x in fake) / 2
    got = d_loss("minimax", torch.tensor(real), torch.tensor(fake))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_match_hand_computed_values():
    fake = [0.5, -3.0, 1.25]
    saturating = sum(math.log(1 - sigmoid(x)) for x in fake) / 3  # G minimises E[log(1 - D(G(z)))]
    nonsaturating = -sum(math.log(sigmoid(x)) for x in fake) / 3  # G minimises -E[log D(G(z))]
    assert g_loss("saturating", torch.tensor(fake)).item() == pytest.approx(saturating, rel=1e-6)
    assert g_loss("nonsaturating", torch.tensor(fake)).item() == pytest.approx(nonsaturating, rel=1e-6)


def test_losses_stay_finite_when_d_saturates():
    huge = torch.tensor([200.0, -200.0], requires_grad=True)
    for loss in (d_loss("minimax", huge, huge), g_loss("saturating", huge), g_loss("nonsaturating", huge)):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()
        huge.grad = None


def test_saturating_gradient_vanishes_where_nonsaturating_does_not():
    # D confidently rejects the fake (D(G(z)) ~ 0): the original minimax G loss gives almost no signal.
    logit = torch.tensor([-8.0], requires_grad=True)
    (grad_sat,) = torch.autograd.grad(g_loss("saturating", logit), logit)
    (grad_ns,) = torch.autograd.grad(g_loss("nonsaturating", logit), logit)
    assert abs(grad_sat.item()) < 1e-3 < abs(grad_ns.item())


def test_bf16_logits_are_computed_in_float32():
    assert d_loss("minimax", torch.zeros(2, dtype=torch.bfloat16), torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32


def test_unknown_loss():
    with pytest.raises(ConfigError, match="unknown G loss"):
        g_loss("wasserstein-ish", torch.zeros(1))
