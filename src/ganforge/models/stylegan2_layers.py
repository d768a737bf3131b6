"""Layers of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"),
written in plain PyTorch after the definitions in NVlabs/stylegan2-ada-pytorch, training/networks.py
and torch_utils/ops (upfirdn2d, conv2d_resample, bias_act).

Everything here uses the equalised learning rate: weights are stored N(0, 1) (N(0, 1/lr_mult^2) with a
learning-rate multiplier) and scaled at run time by lr_mult / sqrt(fan_in), so Adam's per-parameter step
sizes are the same for every layer. Parameter and buffer names follow the reference, so its state dicts
map one to one (the reference's ``resample_filter`` buffers excepted: here the filter is a constant
that is not saved).

Deviations from the reference, all numerically neutral:

* resampling (upfirdn2d) is zero-insertion, padding and a depthwise ``conv2d`` with the [1, 3, 3, 1]
  filter, instead of the custom CUDA kernel;
* modulated convolutions always run as the reference's "non-fused" form (scale the activations by the
  styles, convolve with the shared weight, scale by the demodulation coefficients), which equals the
  grouped convolution with per-sample weights (``tests/models/test_stylegan2.py`` checks this); the
  demodulation coefficients are computed from (styles^2) @ (sum_k weight^2) rather than from the
  materialised per-sample weights;
* the reference's float16 pre-normalisation is omitted: styles, demodulation coefficients, the mapping
  network and D's epilogue run in float32 (autocast off), convolutions follow the caller's autocast.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import depthwise_conv2d

LRELU_GAIN = math.sqrt(2.0)  # the reference's def_gain for 'lrelu': keeps unit second moment


def float32(x: torch.Tensor):
    """A context in which autocast is off, for the parts the reference always runs in float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """The reference's bias_act: add the bias (per channel, dim 1), leaky ReLU(0.2) for 'lrelu',
    multiply by ``gain``, clamp to +-``clamp``."""
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def lowpass_filter(taps=(1, 3, 3, 1)) -> torch.Tensor:
    """The separable FIR filter as a 2-D kernel (4, 4) normalised to sum 1 (the reference's setup_filter)."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (x0, x1, y0, y1; negative crops), filter with ``f * gain``
    (a true convolution), keep every ``down``-th sample. (N, C, H, W) -> (N, C, H', W')."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)  # (N, C, up*H, up*W)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    return depthwise_conv2d(x, (f * gain).flip([0, 1]), stride=down)  # flipped: conv2d correlates


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W), low-pass filtered (the skip generator's image path)."""
    return upfirdn2d(x, f, up=2, pad=(2, 1, 2, 1), gain=4)


def conv3x3_up2(x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """3x3 convolution on the 2x upsampled input: stride-2 transposed convolution, then the low-pass filter
    (the reference's conv2d_resample with up=2, padding=1). (N, I, H, W), (O, I, 3, 3) -> (N, O, 2H, 2W)."""
    x = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)  # (N, O, 2H + 1, 2W + 1)
    return upfirdn2d(x, f, pad=(1, 1, 1, 1), gain=4)


def conv_down2(x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Low-pass filter, then a stride-2 convolution (3x3 or 1x1; conv2d_resample with down=2, padding k//2).
    (N, I, H, W), (O, I, k, k) -> (N, O, H/2, W/2)."""
    k = weight.shape[-1]
    if k == 1:  # filter and subsample first, then the 1x1 convolution
        return F.conv2d(upfirdn2d(x, f, down=2, pad=(1, 1, 1, 1)), weight.to(x.dtype))
    x = upfirdn2d(x, f, pad=(2, 2, 2, 2))  # (N, I, H + 1, W + 1) for k = 3
    return F.conv2d(x, weight.to(x.dtype), stride=2)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: x / sqrt(mean(x^2)) over features. (N, D) -> (N, D)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalised-lr linear layer: weight (out, in) ~ N(0, 1/lr_mult^2) used as weight * lr_mult / sqrt(in),
    bias used as bias * lr_mult; optional leaky ReLU with gain sqrt(2). (N, in) -> (N, out)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_mult: float = 1.0,
                 bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mult / math.sqrt(in_features)
        self.bias_gain = lr_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight.to(x.dtype) * self.weight_gain, self.bias.to(x.dtype) * self.bias_gain)
        return bias_act(x, None, "lrelu", LRELU_GAIN) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    """D's equalised-lr convolution (weight N(0, 1) used as weight / sqrt(in * k^2)), optionally with the
    low-pass 2x downsampling, then bias, activation (gain sqrt(2) for lrelu, times ``gain``) and the
    clamp (``conv_clamp * gain``). (N, in, H, W) -> (N, out, H or H/2, W or W/2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "lrelu", down: bool = False, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            x = conv_down2(x, w, self.resample_filter)
        else:
            x = F.conv2d(x, w.to(x.dtype), padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, self.act_gain * gain, clamp)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, resample_filter: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2's weight modulation and demodulation (paper section 2.2, eq. 1 and 3):
    w'_oi = s_i * w_oi, w''_oi = w'_oi / sqrt(sum_i,k w'_oik^2 + 1e-8), convolved per sample.
    Computed as conv(x * s, w) * d, which equals the grouped convolution with per-sample weights w''.
    x (N, I, H, W), weight (O, I, k, k), styles (N, I) float32 -> (N, O, H, W), or (N, O, 2H, 2W) with up."""
    n = x.shape[0]
    x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)  # modulate the input channels
    if up:
        x = conv3x3_up2(x, weight, resample_filter)
    else:
        x = F.conv2d(x, weight.to(x.dtype), padding=weight.shape[-1] // 2)
    if demodulate:
        with float32(styles):
            # sum over i, k of (s_i w_oik)^2 = (s^2) @ (sum_k w_oik^2)^T: (N, I) @ (I, O) -> (N, O)
            dcoefs = (styles.float().square() @ weight.float().square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
        x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally on the 2x upsampled input) + per-pixel noise with a learned
    strength (init 0) + bias + leaky ReLU (gain sqrt(2)) + clamp. The style comes from an affine map of w
    whose bias starts at 1. (N, I, H, W), w (N, w_dim) -> (N, O, R, R), R = resolution."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 conv_clamp: float | None = None):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))  # no gain: demodulated
        self.register_buffer("noise_const", torch.randn(resolution, resolution))  # the 'const' noise mode
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", lowpass_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", gain: float = 1.0):
        with float32(w):
            styles = self.affine(w.float())  # (N, I)
        x = modulated_conv2d(x, self.weight, styles, up=self.up, resample_filter=self.resample_filter)
        if noise_mode == "random":  # fresh noise from torch's global RNG, one map per sample
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, "lrelu", LRELU_GAIN * gain, clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation (styles scaled by 1/sqrt(I)), bias, clamp;
    linear output. (N, I, H, W), w (N, w_dim) -> (N, channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with float32(w):
            styles = self.affine(w.float()) * self.weight_gain  # (N, I)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, "linear", 1.0, self.conv_clamp)


class MappingNetwork(nn.Module):
    """z (N, z_dim) and labels -> w, after the stylegan2-ada MappingNetwork: pixel-normalised z, concatenated
    with the pixel-normalised label embedding (a linear layer on the one-hot label), then ``num_layers``
    equalised-lr fully connected layers with leaky ReLU and learning-rate multiplier ``lr_mult``.

    With ``num_ws`` the output is broadcast to (N, num_ws, w_dim) and a moving average ``w_avg`` of w
    (decay ``w_avg_beta``, updated in training mode) serves the truncation trick; without it (D's label
    mapping, z_dim 0) the output is (N, w_dim). Runs in float32 whatever the autocast.
    """

    def __init__(self, z_dim: int, num_classes: int, w_dim: int, num_layers: int, lr_mult: float = 0.01,
                 num_ws: int | None = None, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.num_classes, self.w_dim, self.num_ws = z_dim, num_classes, w_dim, num_ws
        self.w_avg_beta = w_avg_beta if num_ws is not None else None
        embed_features = w_dim if num_classes > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if num_classes > 0:
            self.embed = FullyConnectedLayer(num_classes, embed_features)
        self.num_layers = num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], "lrelu", lr_mult))
        if self.w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = True) -> torch.Tensor:
        # z: (N, z_dim) or None, c: (N,) int64 labels or None -> w (N, num_ws, w_dim) or (N, w_dim)
        ref = z if z is not None else c
        with float32(ref):
            parts = []
            if self.z_dim > 0:
                parts.append(normalize_2nd_moment(z.float()))
            if self.num_classes > 0:
                # (N, K): the reference's c vector; class weights (N, K) blend classes for walks
                onehot = c.float() if c.dtype.is_floating_point else F.one_hot(c, self.num_classes).float()
                parts.append(normalize_2nd_moment(self.embed(onehot)))
            x = torch.cat(parts, dim=1)  # (N, z_dim + w_dim)
            for i in range(self.num_layers):
                x = getattr(self, f"fc{i}")(x)  # (N, w_dim)
            if self.w_avg_beta is not None and self.training and update_w_avg:
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
            if self.num_ws is None:
                return x
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (N, num_ws, w_dim)
            if truncation_psi != 1:
                cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
                truncated = self.w_avg.lerp(x[:, :cutoff], truncation_psi)  # w_avg + psi * (w - w_avg)
                x = torch.cat([truncated, x[:, cutoff:]], dim=1)
            return x


class MinibatchStdLayer(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018; stylegan2-ada MinibatchStdLayer): within groups of
    ``group_size`` samples (sample i with i + k * N/G), the standard deviation of every feature, averaged
    over pixels and over the channels of each of ``num_channels`` channel groups, appended as
    ``num_channels`` constant maps. (N, C, H, W) -> (N, C + num_channels, H, W).

    Deviation: the reference requires N divisible by the group size (min(group_size, N)); here a batch
    that is not uses the largest group size <= that which divides N (e.g. 6 samples, group 4 -> 3), so
    the last, smaller batch of an epoch still works.
    """

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)  # (G, n, F, c, H, W)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over the group: (n, F, c, H, W)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n, F)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)
