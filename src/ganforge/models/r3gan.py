"""R3GAN generator and discriminator (Huang, Gokaslan, Kuleshov & Tompkin, "The GAN is dead; long live
the GAN! A Modern GAN Baseline", NeurIPS 2024; reference code: github.com/brownvc/R3GAN, R3GAN/Networks.py).

Both networks are stacks of ResNeXt-style residual blocks with no normalisation at all:

    x + conv1x1(lrelu(gconv3x3(lrelu(conv1x1(x) + b1)) + b2))      (expand -> grouped 3x3 -> project)

* The hidden width is ``expansion`` x the stage width; the 3x3 convolution has
  hidden // ``group_channels`` groups (the reference's cardinality).
* Convolutions and linear layers have no bias; each leaky ReLU (slope 0.2) has a per-channel bias.
* Fix-up initialisation (reference ``ResidualBlock``): weights ~ N(0, gain^2 / fan_in) with
  gain = sqrt(2 / (1 + 0.2^2)) * L^(-1/4), L the number of residual blocks of that network, and the
  last 1x1 convolution of every block set to zero, so each block starts as the identity. Its branch
  weights get no gradient on the first step (the zero projection blocks it) and do from the second
  on, once the projection has moved; the reference does nothing more about it.
* Resampling is bilinear: the separable [1, 3, 3, 1] low-pass filter, as ``upfirdn2d`` applies it
  in the reference, written here with plain (transposed) convolutions. Borders are zero-padded as
  ``upfirdn2d`` pads them, so a constant image stays constant except in its outermost row and column.
* Transitions between stages (reference ``UpsampleLayer``/``DownsampleLayer``): G applies a 1x1
  convolution when the width changes and then upsamples; D downsamples and then applies the 1x1.
* G starts from a learned 4x4 basis (the reference's ``GenerativeBasis``): basis (w, 4, 4) times a
  linear map of z, and ends with a 1x1 convolution to the image channels. The output is linear, not
  squashed by tanh and not clamped, as in the reference; images are clamped when converted to pixels.
* D starts with a 1x1 convolution from the image channels and ends with the reference's
  ``DiscriminativeBasis`` at 4x4: a depthwise 4x4 convolution (one 4x4 filter per channel) to a
  vector (N, w), then a linear layer.

Class-conditional networks (``num_classes`` K > 0), the reference's way:

* G: a label embedding of ``g_embed_dim`` values (default z_dim) is concatenated to z.
* D: the final linear layer maps to ``d_embed_dim`` values (default the 4x4 width) instead of one,
  and the logit is their dot product with a label embedding. There is no separate unconditional
  term (unlike DCGAN's projection D in this package), so a conditional D is not "the unconditional
  D plus a projection": its last linear layer has a different shape.

Labels are integers here where the reference multiplies one-hot vectors by a bias-free linear
layer; ``nn.Embedding`` holds the same K x dim numbers, initialised with the same scale.

Stages and widths. There is one stage per resolution from 4x4 to the image size (log2(R) - 1
stages), each with ``blocks`` residual blocks. A stage at r px has ``width`` channels when
r <= ``full_width_until`` and width * full_width_until / r above it (halving per doubling). The
defaults are the reference CIFAR-10 preset (train.py: 768 channels at 4..32 px, 2 blocks,
expansion 2, 16 channels per group, z_dim 64), and the rule also gives its FFHQ-64 and
FFHQ-256 presets exactly (384, 192, 96 channels at 64, 128, 256 px); its ImageNet presets are
width=1536, group_channels=32 (and full_width_until=64 at 64 px).

Deviations from the reference: any number of image channels (the reference hard-codes 3);
labels as integers (above); no per-stage bfloat16 casts (the reference runs the three
highest-resolution stages of G and lowest of D in bf16; here mixed precision is the caller's
autocast).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import (check_channels, check_labels, check_num_classes, check_resolution, class_rows,
                     depthwise_conv2d, upsample2x_lowpass)
from .registry import check_option_values, register_model

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))  # keeps the second moment through a leaky ReLU
LOWPASS = (1.0, 3.0, 3.0, 1.0)  # binomial filter: bilinear interpolation at a factor of 2


def _msr_init_(weight: torch.Tensor, gain: float = 1.0, fan_in: int | None = None) -> torch.Tensor:
    """He ("MSR") initialisation as the reference's ``MSRInitializer``: N(0, (gain / sqrt(fan_in))^2)."""
    fan_in = weight[0].numel() if fan_in is None else fan_in  # conv (out, in/groups, k, k), linear (out, in)
    with torch.no_grad():
        return weight.normal_(0.0, gain / math.sqrt(fan_in))


def _conv(c_in: int, c_out: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False)
    _msr_init_(conv.weight, gain)
    return conv


def _linear(d_in: int, d_out: int, gain: float = 1.0) -> nn.Linear:
    linear = nn.Linear(d_in, d_out, bias=False)
    _msr_init_(linear.weight, gain)
    return linear


def _embedding(num_classes: int, dim: int, gain: float = 1.0) -> nn.Embedding:
    """The reference's bias-free linear layer on one-hot labels, as a lookup table (K, dim)."""
    embed = nn.Embedding(num_classes, dim)
    _msr_init_(embed.weight, gain, fan_in=num_classes)  # the linear layer's fan-in is K
    return embed


def cardinality(hidden: int, group_channels: int) -> int:
    """Groups of a block's 3x3 convolution: hidden // group_channels (at least 1)."""
    groups = max(1, hidden // group_channels)
    if hidden % groups:
        raise ConfigError(f"a residual block's {hidden} hidden channels cannot be split into {groups} groups "
                          f"of model.group_channels={group_channels}; make each stage's width x model.expansion "
                          f"a multiple of model.group_channels")
    return groups


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2) with a per-channel bias b initialised to 0 (reference ``BiasedActivation``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """x + project(act(grouped3x3(act(expand(x))))), (N, C, H, W) -> (N, C, H, W); the identity at initialisation."""

    def __init__(self, channels: int, expansion: int, group_channels: int, total_blocks: int):
        super().__init__()
        hidden = channels * expansion
        # fix-up scaling: variance of the residual sum stays bounded in the number of blocks L
        # (L^(-1/(2m-2)) for m = 3 layers per branch, reference ResidualBlock)
        gain = LRELU_GAIN * total_blocks ** (-1 / 4)
        self.expand = _conv(channels, hidden, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(hidden)
        self.conv = _conv(hidden, hidden, 3, groups=cardinality(hidden, group_channels), gain=gain)
        self.act2 = BiasedLeakyReLU(hidden)
        self.project = _conv(hidden, channels, 1, gain=0.0)  # zero: the branch starts at 0

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.expand(x))  # (N, hidden, H, W)
        y = self.act2(self.conv(y))  # (N, hidden, H, W)
        return self.project(y)  # (N, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Resample(nn.Module):
    """Bilinear up- or downsampling by 2 with the separable [1, 3, 3, 1] filter, channel by channel.

    Up: zero insertion and the filter scaled by 4 (``layers.upsample2x_lowpass``); down: the filter and
    stride 2 (``layers.depthwise_conv2d``). Same padding as the reference's ``upfirdn2d.upsample2d``/``downsample2d``
    (zeros outside the image). (N, C, H, W) -> (N, C, 2H, 2W) or (N, C, H/2, W/2).
    """

    def __init__(self, direction: str):
        super().__init__()
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        self.direction = direction
        taps = torch.tensor(LOWPASS)
        kernel = torch.outer(taps, taps)
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)  # (4, 4), not a weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.direction == "up":
            return upsample2x_lowpass(x)  # (N, C, 2H, 2W)
        return depthwise_conv2d(x, self.kernel, stride=2, padding=1)  # (N, C, H/2, W/2)


class Upsample(nn.Module):
    """G's transition: 1x1 convolution when the width changes, then bilinear upsampling (reference UpsampleLayer)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = _conv(c_in, c_out) if c_in != c_out else None
        self.resample = Resample("up")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x) if self.conv is not None else x  # (N, c_out, H, W)
        return self.resample(x)  # (N, c_out, 2H, 2W)


class Downsample(nn.Module):
    """D's transition: bilinear downsampling, then a 1x1 convolution when the width changes (reference
    DownsampleLayer)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.resample = Resample("down")
        self.conv = _conv(c_in, c_out) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resample(x)  # (N, c_in, H/2, W/2)
        return self.conv(x) if self.conv is not None else x


class GenerativeBasis(nn.Module):
    """The 4x4 start of G: a learned basis (w, 4, 4), ~ N(0, 1), scaled per channel by a linear map of the input.
    (N, d) -> (N, w, 4, 4)."""

    def __init__(self, d_in: int, width: int):
        super().__init__()
        self.basis = nn.Parameter(torch.randn(width, 4, 4))
        self.linear = _linear(d_in, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis[None].to(z.dtype) * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """The 4x4 end of D: a depthwise 4x4 convolution to one value per channel, then a linear layer.
    (N, w, 4, 4) -> (N, d_out)."""

    def __init__(self, width: int, d_out: int):
        super().__init__()
        self.basis = nn.Conv2d(width, width, 4, groups=width, bias=False)  # (N, w, 1, 1), one 4x4 filter per channel
        _msr_init_(self.basis.weight)
        self.linear = _linear(width, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the 4x4 convolution of a 4x4 map, as a product and a sum (a bfloat16 depthwise convolution is slow
        # on the CPU; see layers.depthwise_conv2d)
        return self.linear((x * self.basis.weight[:, 0].to(x.dtype)).sum((2, 3)))  # (N, w) -> (N, d_out)


def stage_widths(cfg: R3GANConfig) -> list[int]:
    """Channels of each stage from 4x4 up to the resolution: ``width`` up to ``full_width_until`` px,
    then halved at each doubling."""
    stages = check_resolution(cfg.resolution) - 1
    sizes = [4 * 2**i for i in range(stages)]
    return [cfg.width if r <= cfg.full_width_until else max(1, cfg.width * cfg.full_width_until // r) for r in sizes]


class R3GANGenerator(nn.Module):
    """z (N, z_dim), labels (N,) or None -> images (N, C, R, R), linear output (no tanh, as the reference)."""

    bounded_output = False  # not squashed into [-1, 1]: callers clamp when they convert to pixels

    def __init__(self, cfg: R3GANConfig):
        super().__init__()
        check_channels(cfg.channels)
        self.num_classes = check_num_classes(cfg.num_classes)
        self.z_dim = cfg.z_dim
        widths = stage_widths(cfg)  # 4x4 first
        total_blocks = cfg.blocks * len(widths)
        embed_dim = (cfg.g_embed_dim or cfg.z_dim) if self.num_classes else 0

        def blocks(width: int) -> list[nn.Module]:
            return [ResidualBlock(width, cfg.expansion, cfg.group_channels, total_blocks) for _ in range(cfg.blocks)]

        stages = [nn.Sequential(GenerativeBasis(cfg.z_dim + embed_dim, widths[0]), *blocks(widths[0]))]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            stages.append(nn.Sequential(Upsample(w_in, w_out), *blocks(w_out)))
        self.stages = nn.ModuleList(stages)
        self.out = _conv(widths[-1], cfg.channels)  # aggregation to image channels
        self.embed = _embedding(self.num_classes, embed_dim) if self.num_classes else None

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = check_labels(c, self.num_classes, len(z), weights=True)  # labels or class weights (N, K)
        if c is not None:
            z = torch.cat([z, class_rows(self.embed.weight, c).to(z.dtype)], dim=1)  # (N, z_dim + embed_dim)
        x = z
        for stage in self.stages:
            x = stage(x)  # (N, w, 4, 4), then (N, w', 8, 8), ... (N, w_last, R, R)
        return self.out(x)  # (N, C, R, R)


class R3GANDiscriminator(nn.Module):
    """images (N, C, R, R), labels (N,) or None -> logits (N,). No normalisation: samples stay independent."""

    def __init__(self, cfg: R3GANConfig):
        super().__init__()
        check_channels(cfg.channels)
        self.num_classes = check_num_classes(cfg.num_classes)
        widths = stage_widths(cfg)[::-1]  # full resolution first, 4x4 last
        total_blocks = cfg.blocks * len(widths)
        out_dim = (cfg.d_embed_dim or widths[-1]) if self.num_classes else 1

        def blocks(width: int) -> list[nn.Module]:
            return [ResidualBlock(width, cfg.expansion, cfg.group_channels, total_blocks) for _ in range(cfg.blocks)]

        self.inp = _conv(cfg.channels, widths[0])  # extraction from image channels
        stages = [nn.Sequential(*blocks(w_in), Downsample(w_in, w_out)) for w_in, w_out in zip(widths[:-1], widths[1:])]
        stages.append(nn.Sequential(*blocks(widths[-1]), DiscriminativeBasis(widths[-1], out_dim)))
        self.stages = nn.ModuleList(stages)
        # the class embedding: the reference's MSR init with gain 1/sqrt(dim), so the logit starts at unit scale
        self.embed = _embedding(self.num_classes, out_dim, gain=1 / math.sqrt(out_dim)) if self.num_classes else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = check_labels(c, self.num_classes, len(x))
        h = self.inp(x)  # (N, w0, R, R)
        for stage in self.stages:
            h = stage(h)  # (N, w, R/2, R/2) ... then (N, out_dim) after the 4x4 basis
        if c is None:
            return h.flatten()  # (N,)
        return (h * self.embed(c).to(h.dtype)).sum(dim=1)  # projection on the class embedding, (N,)


@register_model("r3gan", generator=R3GANGenerator, discriminator=R3GANDiscriminator, data="images")
@dataclass
class R3GANConfig:
    """Everything needed to rebuild the networks; the defaults are the reference CIFAR-10 preset at 32 px."""

    resolution: int = 32
    channels: int = 3
    z_dim: int = 64
    width: int = 768  # channels of every stage up to full_width_until px (G and D alike)
    full_width_until: int = 32  # above this resolution the width halves at each doubling
    blocks: int = 2  # residual blocks per stage
    expansion: int = 2  # a block's hidden channels: expansion x the stage width
    group_channels: int = 16  # channels per group of the grouped 3x3 convolution (cardinality = hidden / this)
    g_embed_dim: int | None = None  # conditional G: label embedding concatenated to z; None: z_dim
    d_embed_dim: int | None = None  # conditional D: projection dimension; None: the 4x4 stage width
    num_classes: int = 0  # 0: unconditional; K: conditioned on class labels 0..K-1

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values the types do not catch, checked before any data is loaded."""
        check_option_values(self, positive=("z_dim", "width", "full_width_until", "blocks", "expansion",
                                            "group_channels"))
        for name in ("g_embed_dim", "d_embed_dim"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"model.{name} must be positive or empty (the reference's default), got {value}")
        if self.full_width_until < 4 or self.full_width_until & (self.full_width_until - 1):
            raise ConfigError(f"model.full_width_until must be a power of two >= 4, got {self.full_width_until}")
        for width in stage_widths(self):
            cardinality(width * self.expansion, self.group_channels)


# A CPU-sized configuration, about 0.27M parameters in G and in D at 32 px: one of the reference's blocks
# per stage with 128 channels at 4 and 8 px, halved at each doubling above (64 at 16 px, 32 at 32 px). A
# pyramid rather than the reference's constant width: with R1 and R2 on every D step (double backward passes
# through D, in float32) even this size trains at only about 53 img/s at 32 px (RGB, batch 32) on the 2-core CPU.
SMALL_OPTIONS = dict(width=128, full_width_until=8, blocks=1, expansion=2, group_channels=16, z_dim=64)
