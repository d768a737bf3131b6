import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.models.layers import MinibatchStdDev, apply_spectral_norm, depthwise_conv2d, upsample2x_lowpass


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


LOWPASS_2D = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])) / 64  # (4, 4)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)])
def test_depthwise_conv2d_filters_each_channel_alone(stride, padding):
    x = torch.randn(2, 3, 8, 8)
    kernel = torch.randn(4, 4)
    y = depthwise_conv2d(x, kernel, stride=stride, padding=padding)
    for ch in range(3):  # channel by channel, as a one-channel convolution
        expected = F.conv2d(x[:, ch: ch + 1], kernel[None, None], stride=stride, padding=padding)
        torch.testing.assert_close(y[:, ch: ch + 1], expected)


def test_depthwise_conv2d_keeps_the_dtype_and_passes_gradients_under_autocast():
    x = torch.randn(2, 3, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv2d(x, LOWPASS_2D, stride=2, padding=1)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 4, 4)
    y.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_upsample2x_lowpass_equals_zero_insertion_and_the_filter():
    """The shifted-copy form equals the transposed convolution with the [1,3,3,1] filter x 4 (upfirdn2d up=2),
    borders included, and its gradient equals that convolution's gradient."""
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    y = upsample2x_lowpass(x)
    n, c, h, w = x.shape
    kernel = (LOWPASS_2D * 4).to(torch.float64)[None, None]
    ref = F.conv_transpose2d(x.reshape(n * c, 1, h, w), kernel, stride=2, padding=1).reshape(n, c, 2 * h, 2 * w)
    torch.testing.assert_close(y, ref)
    upstream = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, upstream)
    (ref_grad,) = torch.autograd.grad(ref, x, upstream)
    torch.testing.assert_close(grad, ref_grad)
