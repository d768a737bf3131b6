"""Building blocks shared by the convolutional models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

NORMS = ("batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer by name.

    ``group`` and ``none`` keep each sample independent of the rest of the batch, which
    per-sample-gradient methods (differential privacy) require of the discriminator.
    """
    check_norm(kind)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(num_groups=_group_count(channels), num_channels=channels)
    return nn.Identity()


def check_norm(kind: str) -> str:
    if kind not in NORMS:
        raise ConfigError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMS)}")
    return kind


def _group_count(channels: int) -> int:
    """Largest group count <= 32 that divides ``channels``."""
    for groups in range(min(32, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def dcgan_init_(module: nn.Module) -> None:
    """The classic DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:  # affine ones
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_resolution(resolution: int) -> int:
    """Return log2(resolution), rejecting sizes the convolutional stacks cannot build."""
    if resolution < 16 or resolution > 256 or resolution & (resolution - 1):
        raise ConfigError(f"resolution must be a power of two from 16 to 256, got {resolution}")
    return resolution.bit_length() - 1


def check_channels(channels: int) -> int:
    if not 1 <= channels <= 4:
        raise ConfigError(f"images must have 1 to 4 channels, got {channels}")
    return channels


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the standard deviation of each feature over a group of samples,
    averaged over channels and pixels, so D can see how varied a batch is. (N, C, H, W) -> (N, C + 1, H, W).

    Mixes samples within a group: not for per-sample-gradient (differential privacy) training.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # largest group size <= group_size that divides the batch
            g -= 1
        y = x.float().reshape(g, n // g, c, h, w)  # sample i is grouped with i + k * (n // g)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()  # (n // g, C, H, W)
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # (n // g,)
        y = y.view(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (one power iteration per training forward) of every conv and linear layer."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(m)
    return module


def check_labels(c: torch.Tensor | None, num_classes: int, n: int, weights: bool = False) -> torch.Tensor | None:
    """Check class labels against a model's ``num_classes``: None for an unconditional model,
    an int64-like (N,) tensor for a conditional one. Values are not range-checked here (that
    would synchronise with the GPU at every step); an out-of-range label fails in the embedding.

    ``weights=True`` (generators) also accepts class weights, float (N, K): a mixture of the
    classes' embeddings, e.g. one-hot rows blended to walk from one class to another. Look rows
    up with :func:`class_rows`, which handles both.
    """
    if weights and num_classes and c is not None and c.dtype.is_floating_point:
        if c.shape != (n, num_classes):
            raise ValueError(f"class weights must have shape ({n}, {num_classes}), got {tuple(c.shape)}")
        return c
    if num_classes == 0:
        if c is not None:
            raise ValueError("this model is unconditional (num_classes=0) but class labels were given; "
                             "call it without c, or build it with num_classes > 0")
        return None
    if c is None:
        raise ValueError(f"this model is class-conditional ({num_classes} classes): pass labels c of shape (N,)")
    if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool:
        raise ValueError(f"class labels must be integers (int64), got {c.dtype}")
    if c.shape != (n,):
        raise ValueError(f"class labels must have shape ({n},) to match the batch, got {tuple(c.shape)}")
    return c


def class_rows(table: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Rows of a per-class table (K, D) for labels c (N,) -> (N, D); for class weights c (N, K) float,
    the weighted sum of rows (equal to the lookup for one-hot weights)."""
    return c.to(table.dtype) @ table if c.dtype.is_floating_point else table[c]


def check_num_classes(num_classes: int) -> int:
    if num_classes < 0:
        raise ConfigError(f"num_classes must be 0 (unconditional) or a positive class count, got {num_classes}")
    return num_classes


class ConditionalNorm2d(nn.Module):
    """Class-conditional normalisation (conditional BatchNorm of cGANs with projection D, SNGAN, BigGAN):
    a normalisation without its own affine, followed by a per-class gain and bias, initialised
    to 1 and 0 so that every class starts as the plain normalisation. (N, C, H, W), (N,) -> (N, C, H, W).
    """

    def __init__(self, kind: str, channels: int, num_classes: int):
        super().__init__()
        if check_norm(kind) == "batch":
            self.norm = nn.BatchNorm2d(channels, affine=False)
        elif kind == "group":
            self.norm = nn.GroupNorm(_group_count(channels), channels, affine=False)
        else:
            raise ConfigError("conditional normalisation needs 'batch' or 'group', not 'none'")
        self.weight = nn.Parameter(torch.ones(num_classes, channels))  # per-class gain
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))  # per-class bias

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = class_rows(self.weight, c).to(x.dtype)[:, :, None, None]  # (N, C, 1, 1)
        bias = class_rows(self.bias, c).to(x.dtype)[:, :, None, None]
        return self.norm(x) * gain + bias


def depthwise_conv2d(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Filter every channel of x (N, C, H, W) with the same 2-D ``kernel`` (kh, kw) as one grouped
    convolution (a correlation). Returns x's dtype.

    On the CPU it runs in float32 whatever the autocast: oneDNN's bfloat16 depthwise kernels measured
    about 10x slower than its float32 ones on the development machine (forward + backward of a 4x4
    stride-2 filter over (64, 192, 16, 16): 60 ms against 6 ms), and the casts cost little.
    """
    c = x.shape[1]
    weight = kernel.reshape(1, 1, *kernel.shape[-2:]).expand(c, 1, -1, -1)  # (C, 1, kh, kw)
    if x.device.type != "cpu":
        return F.conv2d(x, weight.to(x.dtype), stride=stride, padding=padding, groups=c)
    with torch.autocast("cpu", enabled=False):
        y = F.conv2d(x.float(), weight.float(), stride=stride, padding=padding, groups=c)
    return y.to(x.dtype)


def upsample2x_lowpass(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling: zero insertion and the [1, 3, 3, 1] filter times 4 with zeros outside the
    image (``upfirdn2d`` with up=2, pad (2, 1) of the StyleGAN2/R3GAN references). Per axis that is
    out[2i] = (x[i-1] + 3 x[i]) / 4 and out[2i+1] = (3 x[i] + x[i+1]) / 4 with x = 0 outside, computed
    here with shifted copies: the transposed depthwise convolution it replaces measured 5x slower on the
    CPU. (N, C, H, W) -> (N, C, 2H, 2W)."""

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        before = (1, 0) if dim == 3 else (0, 0, 1, 0)
        after = (0, 1) if dim == 3 else (0, 0, 0, 1)
        prev = F.pad(t, before).narrow(dim, 0, n)  # t[i-1]
        nxt = F.pad(t, after).narrow(dim, 1, n)  # t[i+1]
        three = 3 * t
        even, odd = (prev + three) / 4, (three + nxt) / 4
        return torch.stack((even, odd), dim + 1).flatten(dim, dim + 1)  # interleaved: (..., 2n, ...)

    return along(along(x, 2), 3)
