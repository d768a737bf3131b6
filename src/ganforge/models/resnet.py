"""SNGAN ResNet generator and discriminator (Miyato et al. 2018), optionally class-conditional with a
projection discriminator (Miyato & Koyama 2018), for 16-256 px images with 1-4 channels.

References: T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018 (appendix B, the ResNet models); T. Miyato, M. Koyama, "cGANs with
Projection Discriminator", ICLR 2018; their Chainer code (pfnet-research/sngan_projection); and the
PyTorch re-implementation in mimicry (kwotsin/mimicry, ``torch_mimicry/nets/sngan``), whose 32 px
models set the parameter counts reproduced here: G 4,276,739 and D 1,053,825 at 32 px, 3 channels.

Generator: z (N, z_dim) -> linear -> (N, w0, 4, 4), one up-block per doubling to the resolution,
then BatchNorm-ReLU-conv3x3 to the image channels and tanh (outputs in [-1, 1]). An up-block is
BatchNorm-ReLU-upsample-conv3x3-BatchNorm-ReLU-conv3x3 plus a learnable 1x1 convolution of the
nearest-upsampled input as its shortcut.

Discriminator (no BatchNorm: each sample's logit depends on that sample only): an "optimised" first
block (conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1), then blocks
ReLU-conv3x3-ReLU-conv3x3[-avgpool] with a 1x1 shortcut where the width changes or the block
halves the resolution, then ReLU, a sum over positions (global sum pooling) and a linear layer to
one logit (no sigmoid). Spectral normalisation (one power iteration per training forward) wraps
every convolution, the linear layer and the projection embedding.

Widths (``layout``):

* ``constant`` (the reference's 32 px / CIFAR-10 models): G is g_width wide throughout; D is
  d_width wide, halves the resolution down to 8x8 and then has two blocks that keep it (at 32 px:
  optimised block, one halving block, two blocks at 8x8, exactly the reference).
* ``pyramid`` (the reference's ImageNet-style 64 and 128 px models, ch = 64): widths are multiples
  of ch, ch_G = g_width / 4 and ch_D = d_width / 2, so that the defaults (256, 128) give the
  reference's ch = 64 at every resolution and scaling g_width or d_width scales every layer. G's
  4x4 width is 16 ch (8 ch at 32 px, 4 ch at 16 px) and it narrows to ch at the top resolution;
  D widens from ch to 16 ch. The multiples per resolution are in ``PYRAMID_G`` and ``PYRAMID_D``:
  64 and 128 px are mimicry's sngan_64/sngan_128 (= the official Chainer 64 and 128 px models),
  256 px is the official snresnet_256/resnet_256 (mimicry has none); 16 and 32 px are extrapolated
  (D halves to 4x4 and then has one block that widens without halving, as the 48 px reference
  does at 3x3).
* ``auto`` (default): ``constant`` up to 32 px, ``pyramid`` from 64 px, as in the reference.

Class-conditional networks (``num_classes`` K > 0) take labels c (N,) in 0..K-1:

* G: conditional BatchNorm in every up-block (per-class gain and bias; ``ConditionalNorm2d``). The
  final BatchNorm stays unconditional, as in the reference (Chainer ``b5``, mimicry cGAN-PD).
* D: projection: logit = linear(h) + <embed(c), h>, with h the (N, w) sum-pooled features and the
  embedding spectrally normalised. With the embedding at 0 it is exactly the unconditional D.

Deviations, and why:

* The initialisation follows the official Chainer code: Glorot-uniform weights with gain sqrt(2) in
  the residual convolutions and 1 elsewhere, zero biases. mimicry leaves PyTorch's default biases.
  Conditional gains start at exactly 1 (mimicry: N(1, 0.02)), so every class starts as plain BatchNorm.
* G upsamples by nearest neighbour (the paper's Chainer ``unpooling_2d``); mimicry uses bilinear.
* The shortcuts apply their 1x1 convolution before the (nearest) upsampling in G and after the
  average pooling in D, whatever the reference's order: a 1x1 convolution commutes with both, so the
  function is the same at lower cost.
* D's shortcut sees the block input before the ReLU (paper, Chainer). mimicry's in-place ReLU also
  rectifies the shortcut input of its non-first blocks; this module does not copy that.
* The 32 px D's final linear layer has a bias as in mimicry (the Chainer 32 px model has none: one
  parameter fewer).
* At 64 px the reference's last D block halves 4x4 to 2x2; kept (``PYRAMID_D``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import (
    ConditionalNorm2d,
    apply_spectral_norm,
    check_channels,
    check_labels,
    check_num_classes,
    check_resolution,
)
from .registry import check_option_values, register_model

LAYOUTS = ("auto", "constant", "pyramid")

# Pyramid layout, multiples of ch. G: the 4x4 width, then each up-block's output width.
PYRAMID_G = {
    16: (4, 2, 1),  # extrapolated
    32: (8, 4, 2, 1),  # extrapolated (the 48 px reference's widths, from 4x4 instead of 6x6)
    64: (16, 8, 4, 2, 1),  # mimicry sngan_64, Chainer resnet_64
    128: (16, 16, 8, 4, 2, 1),  # mimicry sngan_128, Chainer resnet (ImageNet 128 px)
    256: (16, 16, 8, 8, 4, 2, 1),  # Chainer resnet_256
}
# D: (width, halves the resolution) of each block, the first being the optimised block.
PYRAMID_D = {
    16: ((1, True), (2, True), (4, False)),  # extrapolated
    32: ((1, True), (2, True), (4, True), (8, False)),  # extrapolated
    64: ((1, True), (2, True), (4, True), (8, True), (16, True)),  # mimicry sngan_64: ends at 2x2
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),  # mimicry sngan_128
    256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),  # Chainer snresnet_256
}


def resolved_layout(cfg: ResNetConfig) -> str:
    """``cfg.layout`` with ``auto`` replaced by the reference's choice for the resolution."""
    check_option_values(cfg, choices={"layout": LAYOUTS})
    if cfg.layout == "auto":
        return "constant" if cfg.resolution <= 32 else "pyramid"
    return cfg.layout


def _pyramid_base(width: int, divisor: int, name: str) -> int:
    if width % divisor:
        raise ConfigError(f"model.{name} must be a multiple of {divisor} in the pyramid layout (64 px and up "
                          f"with layout 'auto'), where the base width is {name} / {divisor}; got {width}")
    return width // divisor


def generator_widths(cfg: ResNetConfig) -> list[int]:
    """G's width at 4x4, then the output width of each up-block (low resolution first)."""
    stages = check_resolution(cfg.resolution) - 2  # up-blocks from 4x4 to the resolution
    if resolved_layout(cfg) == "constant":
        return [cfg.g_width] * (stages + 1)
    ch = _pyramid_base(cfg.g_width, 4, "g_width")
    return [m * ch for m in PYRAMID_G[cfg.resolution]]


def discriminator_blocks(cfg: ResNetConfig) -> list[tuple[int, bool]]:
    """(output width, halves the resolution) of each D block, the optimised first block first."""
    log2 = check_resolution(cfg.resolution)
    if resolved_layout(cfg) == "constant":
        return [(cfg.d_width, True)] * (log2 - 3) + [(cfg.d_width, False)] * 2  # down to 8x8, two more at 8x8
    ch = _pyramid_base(cfg.d_width, 2, "d_width")
    return [(m * ch, halves) for m, halves in PYRAMID_D[cfg.resolution]]


def _init(conv: nn.Module, gain: float = 1.0) -> nn.Module:
    """Glorot-uniform weight and zero bias, as the Chainer reference initialises its layers."""
    nn.init.xavier_uniform_(conv.weight, gain)
    if getattr(conv, "bias", None) is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")  # (N, C, H, W) -> (N, C, 2H, 2W)


class GBlock(nn.Module):
    """Up-block: BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, shortcut: upsample + 1x1 conv.
    BN is conditional (per-class gain and bias) when ``num_classes`` > 0."""

    def __init__(self, w_in: int, w_out: int, num_classes: int):
        super().__init__()

        def norm(channels: int) -> nn.Module:
            return ConditionalNorm2d("batch", channels, num_classes) if num_classes else nn.BatchNorm2d(channels)

        self.norm1 = norm(w_in)
        self.conv1 = _init(nn.Conv2d(w_in, w_out, 3, 1, 1), math.sqrt(2))
        self.norm2 = norm(w_out)  # hidden width = output width, as in the reference
        self.conv2 = _init(nn.Conv2d(w_out, w_out, 3, 1, 1), math.sqrt(2))
        self.shortcut = _init(nn.Conv2d(w_in, w_out, 1))  # learnable: every G block upsamples

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        # x: (N, w_in, H, W) -> (N, w_out, 2H, 2W)
        norm = (lambda m, t: m(t, c)) if c is not None else (lambda m, t: m(t))
        h = self.conv1(_upsample(F.relu(norm(self.norm1, x))))  # (N, w_out, 2H, 2W)
        h = self.conv2(F.relu(norm(self.norm2, h)))
        return h + _upsample(self.shortcut(x))  # 1x1 conv then nearest upsampling = upsampling then 1x1 conv


class DBlock(nn.Module):
    """Down-block. ``first``: the optimised block (conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1),
    which sees the image and so has no ReLU before its first convolution. Otherwise
    ReLU-conv3x3-ReLU-conv3x3[-avgpool] with hidden width = input width (as in the reference) and a 1x1
    shortcut where the width changes or the block halves the resolution."""

    def __init__(self, w_in: int, w_out: int, halves: bool, first: bool = False):
        super().__init__()
        hidden = w_out if first else w_in
        self.first, self.halves = first, halves
        self.conv1 = _init(nn.Conv2d(w_in, hidden, 3, 1, 1), math.sqrt(2))
        self.conv2 = _init(nn.Conv2d(hidden, w_out, 3, 1, 1), math.sqrt(2))
        self.shortcut = _init(nn.Conv2d(w_in, w_out, 1)) if (w_in != w_out or halves) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, w_in, H, W) -> (N, w_out, H/2, W/2) if halves, else (N, w_out, H, W)
        h = x if self.first else F.relu(x)  # not in place: the shortcut takes x before the ReLU
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.halves:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)  # average pooling then 1x1 conv = 1x1 conv then average pooling
        return h + s


class ResNetGenerator(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.channels = check_channels(cfg.channels)
        widths = generator_widths(cfg)  # [4x4 width, block outputs...]
        self.z_dim = cfg.z_dim
        self.num_classes = check_num_classes(cfg.num_classes)
        self.linear = _init(nn.Linear(cfg.z_dim, 16 * widths[0]))  # z -> (N, w0 * 4 * 4)
        self.blocks = nn.ModuleList(GBlock(w_in, w_out, self.num_classes)
                                    for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.norm = nn.BatchNorm2d(widths[-1])  # unconditional, as in the reference
        self.to_image = _init(nn.Conv2d(widths[-1], cfg.channels, 3, 1, 1))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        # z: (N, z_dim), c: (N,) labels or None -> images (N, C, R, R) in [-1, 1]
        c = check_labels(c, self.num_classes, len(z), weights=True)  # labels or class weights (N, K)
        h = self.linear(z).view(len(z), -1, 4, 4)  # (N, w0, 4, 4)
        for block in self.blocks:
            h = block(h, c)  # doubles H and W
        return torch.tanh(self.to_image(F.relu(self.norm(h))))  # (N, C, R, R)


class ResNetDiscriminator(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        check_channels(cfg.channels)
        self.num_classes = check_num_classes(cfg.num_classes)
        blocks, w_in = [], cfg.channels
        for i, (w_out, halves) in enumerate(discriminator_blocks(cfg)):
            blocks.append(DBlock(w_in, w_out, halves, first=i == 0))
            w_in = w_out
        self.blocks = nn.Sequential(*blocks)
        self.linear = _init(nn.Linear(w_in, 1))
        apply_spectral_norm(self)  # every conv and the linear layer
        self.embed = None
        if self.num_classes > 0:
            self.embed = _init(nn.Embedding(self.num_classes, w_in))  # projection: one w-vector per class
            nn.utils.parametrizations.spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, C, R, R) in [-1, 1], c: (N,) labels or None -> logits (N,)
        c = check_labels(c, self.num_classes, len(x))
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling: (N, w)
        out = self.linear(h).flatten()  # (N,)
        if c is None:
            return out
        projection = (self.embed(c).float() * h.float()).sum(dim=1)  # <embed(c), h>, (N,)
        return out + projection.to(out.dtype)


# A CPU-sized variant (32 px: G 368,771 and D 264,769 parameters instead of 4.28M and 1.05M).
SMALL_OPTIONS = dict(g_width=64, d_width=64)


@register_model("resnet", generator=ResNetGenerator, discriminator=ResNetDiscriminator, data="images")
@dataclass
class ResNetConfig:
    """SNGAN ResNet networks; the defaults are the reference's 32 px CIFAR-10 models (mimicry sngan_32)."""

    resolution: int = 32
    channels: int = 3
    z_dim: int = 128
    g_width: int = 256  # constant layout: G's width everywhere; pyramid: 4x G's top-resolution width
    d_width: int = 128  # constant layout: D's width everywhere; pyramid: 2x D's first-block width
    layout: str = "auto"  # constant (<= 32 px with auto), pyramid (>= 64 px with auto); see the module doc
    num_classes: int = 0  # 0: unconditional; K: conditioned on class labels 0..K-1

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values the types do not catch, checked before any data is loaded."""
        check_option_values(self, positive=("z_dim", "g_width", "d_width"), choices={"layout": LAYOUTS})
        if self.layout == "pyramid":
            _pyramid_base(self.g_width, 4, "g_width")
            _pyramid_base(self.d_width, 2, "d_width")
