import pytest
import torch
from torch import nn

from ganforge.models.layers import MinibatchStdDev, apply_spectral_norm


def test_spectral_norm_makes_the_largest_singular_value_one():
    torch.manual_seed(0)
    net = apply_spectral_norm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 4)))
    x = torch.randn(2, 3, 6, 6)
    for _ in range(30):  # power iterations happen in training-mode forwards
        net[1](net[0](x).mean((2, 3)))
    for layer in net:
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_minibatch_stddev():
    x = torch.tensor([0.0, 2.0, 4.0, 6.0]).view(4, 1, 1, 1).expand(4, 2, 2, 2).contiguous()
    out = MinibatchStdDev(group_size=2)(x)  # groups {0, 2} and {1, 3}: std of (0, 4) and (2, 6) = 2
    assert out.shape == (4, 3, 2, 2)
    torch.testing.assert_close(out[:, 2], torch.full((4, 2, 2), 2.0), atol=1e-3, rtol=0)
    same = MinibatchStdDev()(torch.ones(4, 2, 3, 3))
    assert same[:, 2].abs().max() < 1e-3
