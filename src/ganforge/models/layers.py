"""Building blocks shared by the convolutional models."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

NORMS = ("batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer by name.

    ``group`` and ``none`` keep each sample independent of the rest of the batch, which
    per-sample-gradient methods (differential privacy) require of the discriminator.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(num_groups=_group_count(channels), num_channels=channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMS)}")


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
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
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


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map model outputs in [-1, 1] to uint8 pixels. (N, C, H, W) float -> (N, C, H, W) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map uint8 pixels to [-1, 1]. (N, C, H, W) uint8 -> (N, C, H, W) float."""
    return images.to(dtype) / 127.5 - 1.0


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
