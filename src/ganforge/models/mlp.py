"""Small fully connected G and D for 2-D point sets (the Gaussian-mixture mode-collapse tests)."""
from __future__ import annotations

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> points (N, 2)."""

    def __init__(self, z_dim: int = 2, width: int = 128, depth: int = 3, out_dim: int = 2):
        super().__init__()
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        d_in = z_dim
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            d_in = width
        layers.append(nn.Linear(d_in, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (N, 2) -> logits (N,)."""

    def __init__(self, width: int = 128, depth: int = 3, in_dim: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        d_in = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
