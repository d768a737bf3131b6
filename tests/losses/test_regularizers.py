import pytest
import torch
from torch import nn

from ganforge.losses.regularizers import clip_weights_, grad_norm, gradient_penalty, r1_penalty


def linear_d(w):
    d = nn.Linear(len(w), 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([w]))
    return lambda x: d(x.flatten(1)).flatten()


def test_r1_of_a_linear_d_is_its_squared_weight_norm():
    D = linear_d([3.0, 4.0])
    x = torch.randn(5, 2, requires_grad=True)
    torch.testing.assert_close(r1_penalty(D(x), x), torch.full((5,), 25.0))


@pytest.mark.parametrize("w,expected", [([0.6, 0.8], 0.0), ([1.2, 1.6], 1.0)])
def test_gradient_penalty_of_a_linear_d(w, expected):
    D = linear_d(w)
    gp = gradient_penalty(D, torch.randn(6, 2), torch.randn(6, 2), torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(expected, abs=1e-5)


def test_clip_weights_and_grad_norm():
    m = nn.Linear(3, 3)
    with torch.no_grad():
        m.weight.mul_(100)
    clip_weights_(m, 0.01)
    assert all(p.abs().max() <= 0.01 for p in m.parameters())
    m.weight.grad = torch.full((3, 3), 1.0)
    m.bias.grad = torch.full((3,), 1.0)
    assert grad_norm(m.parameters()).item() == pytest.approx(12**0.5)


def test_mode_seeking_ratio_compares_the_two_halves_of_the_batch():
    from ganforge.losses.regularizers import mode_seeking_loss, mode_seeking_ratio, paired_halves

    assert paired_halves(5) == (slice(0, 2), slice(3, 5))  # the middle sample of an odd batch is left out
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])  # pairs (0, 2) and (1, 3): |dz| mean 1
    collapsed = torch.ones(4, 1, 2, 2)  # the same image for every z
    assert mode_seeking_ratio(collapsed, z) == 0
    spread = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.0, 3.0, 0.0)])  # |dG| mean (3 + 0) / 2
    assert mode_seeking_ratio(spread, z).item() == pytest.approx(1.5 / 1.0)
    assert mode_seeking_loss(spread, z, weight=2.0).item() == pytest.approx(2.0 / (1.5 + 1e-5))
    # its gradient pushes paired images apart
    images = torch.zeros(4, 1, 2, 2).requires_grad_(True)
    with torch.no_grad():
        images[2] += 0.1
    mode_seeking_loss(images, z, weight=1.0).backward()
    assert (images.grad[0] > 0).all() and (images.grad[2] < 0).all()


def test_d_step_adds_the_penalties_its_registry_holds(monkeypatch):
    """d_step takes its penalties from D_PENALTIES: a registered one is added on the updates it applies to,
    and needs_double_backward follows the registry too."""
    from ganforge.config import RegularizerConfig
    from ganforge.losses.regularizers import D_PENALTIES, DPenalty
    from ganforge.training.steps import StepOptions, d_step, needs_double_backward

    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))  # (N, 1, 2, 2) -> (N,)
    opt = torch.optim.SGD(D.parameters(), lr=0.0)
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    even = DPenalty(lambda reg, step: step % 2 == 0, lambda p: torch.tensor(2.5))
    monkeypatch.setitem(D_PENALTIES, "even", even)
    opts = StepOptions(reg=RegularizerConfig())
    assert d_step(D, opt, real, fake, opts, step=0)["penalty_d"].item() == 2.5
    assert d_step(D, opt, real, fake, opts, step=1)["penalty_d"].item() == 0.0
    assert needs_double_backward(opts.reg, 0) and not needs_double_backward(opts.reg, 1)
