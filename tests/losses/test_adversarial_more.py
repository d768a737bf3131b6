import math

import pytest
import torch

from ganforge.losses import d_loss, g_loss
from ganforge.losses.adversarial import LOSS_PAIRS

REAL, FAKE = torch.tensor([2.0, -0.5]), torch.tensor([0.25, -1.5])


def test_hand_computed_values():
    assert d_loss("wasserstein", REAL, FAKE).item() == pytest.approx((0.25 - 1.5) / 2 - (2.0 - 0.5) / 2)
    assert g_loss("wasserstein", FAKE).item() == pytest.approx(-(0.25 - 1.5) / 2)
    assert d_loss("hinge", REAL, FAKE).item() == pytest.approx((0 + 1.5) / 2 + (1.25 + 0) / 2)
    assert g_loss("hinge", FAKE).item() == pytest.approx(0.625)
    assert d_loss("least_squares", REAL, FAKE).item() == pytest.approx(0.5 * (1 + 2.25) / 2 + 0.5 * (0.0625 + 2.25) / 2)
    assert g_loss("least_squares", FAKE).item() == pytest.approx(0.5 * (0.5625 + 6.25) / 2)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert d_loss("relativistic", REAL, FAKE).item() == pytest.approx((sp(0.25 - 2.0) + sp(-1.5 + 0.5)) / 2)
    assert g_loss("relativistic", FAKE, REAL).item() == pytest.approx((sp(2.0 - 0.25) + sp(-0.5 + 1.5)) / 2)


def test_properties():
    assert d_loss("hinge", torch.tensor([1.5, 3.0]), torch.tensor([-1.0, -2.0])).item() == 0  # margins met
    shifted = d_loss("relativistic", REAL + 7, FAKE + 7)  # depends only on differences
    assert shifted.item() == pytest.approx(d_loss("relativistic", REAL, FAKE).item())
    fake = FAKE.clone().requires_grad_(True)
    g_loss("wasserstein", fake).backward()
    assert torch.equal(fake.grad, torch.full((2,), -0.5))  # constant gradient
    s = 0.1
    smoothed = d_loss("minimax", REAL, FAKE, label_smoothing=s).item()
    bce = sum(-(1 - s) * math.log(1 / (1 + math.exp(-r))) - s * math.log(1 - 1 / (1 + math.exp(-r))) for r in REAL.tolist()) / 2
    assert smoothed == pytest.approx(bce + sum(math.log1p(math.exp(f)) for f in FAKE.tolist()) / 2)
    with pytest.raises(ValueError, match="real"):
        g_loss("relativistic", FAKE)
    assert set(LOSS_PAIRS) == {"minimax", "wasserstein", "hinge", "least_squares", "relativistic"}
