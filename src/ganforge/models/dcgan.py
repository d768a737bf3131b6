"""DCGAN generator and discriminator for 16-256 px images with 1-4 channels.

Generator: z (N, z_dim) -> 4x4 by a transposed convolution, then one stride-2 transposed
convolution per doubling up to the resolution, BatchNorm + ReLU between, tanh at the end.
Discriminator: the mirror image with stride-2 convolutions and LeakyReLU(0.2), no
normalisation on the first layer, and a final 4x4 convolution that returns one logit per
image (no sigmoid: the losses work on logits for numerical stability).
Widths double at each halving of the spatial size, capped at 8x the base width.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import MinibatchStdDev, apply_spectral_norm, check_channels, check_resolution, dcgan_init_, make_norm


@dataclass
class DCGANConfig:
    """Everything needed to rebuild the networks; saved beside the weights."""

    resolution: int = 32
    channels: int = 3
    z_dim: int = 100
    g_width: int = 64  # channels of G's last hidden layer; earlier layers have multiples of it
    d_width: int = 64  # channels of D's first layer
    g_norm: str = "batch"
    d_norm: str = "batch"
    d_spectral_norm: bool = False  # spectral normalisation of every D layer
    g_spectral_norm: bool = False
    d_dropout: float = 0.0  # dropout after each hidden D layer
    d_mbstd: bool = False  # minibatch standard-deviation channel before D's last layer

    def to_dict(self) -> dict:
        return asdict(self)


def _widths(base: int, stages: int) -> list[int]:
    """Widths from the highest resolution stage to the lowest: base, 2*base, ... capped at 8*base."""
    return [base * min(2**i, 8) for i in range(stages)]


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        check_channels(cfg.channels)
        stages = check_resolution(cfg.resolution) - 2  # number of 4x4 -> resolution doublings
        widths = _widths(cfg.g_width, stages)[::-1]  # low resolution (wide) first
        self.z_dim = cfg.z_dim
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False),  # (N, w0, 4, 4)
            make_norm(cfg.g_norm, widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),  # doubles H and W
                make_norm(cfg.g_norm, w_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        if cfg.g_spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (N, z_dim) -> images (N, C, R, R) in [-1, 1]
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        check_channels(cfg.channels)
        stages = check_resolution(cfg.resolution) - 2
        widths = _widths(cfg.d_width, stages)
        dropout = [nn.Dropout(cfg.d_dropout)] if cfg.d_dropout > 0 else []
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False),  # (N, w0, R/2, R/2)
            nn.LeakyReLU(0.2, inplace=True),
            *dropout,
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1, bias=cfg.d_norm == "none"),  # halves H and W
                make_norm(cfg.d_norm, w_out),
                nn.LeakyReLU(0.2, inplace=True),
                *dropout,
            ]
        if cfg.d_mbstd:
            layers.append(MinibatchStdDev())  # (N, w + 1, 4, 4)
        layers.append(nn.Conv2d(widths[-1] + int(cfg.d_mbstd), 1, 4, 1, 0, bias=False))  # (N, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        if cfg.d_spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, R, R) in [-1, 1] -> logits (N,)
        return self.net(x).flatten()
