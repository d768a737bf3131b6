"""Small fully connected G and D for 2-D point sets (the Gaussian-mixture mode-collapse tests)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import MinibatchStdDev


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
    """points (N, 2) -> logits (N,).

    ``dropout`` follows each hidden layer; ``mbstd`` appends, before the last layer, the standard
    deviation of the hidden features over groups of ``mbstd_group`` samples (the minibatch
    standard-deviation feature of the convolutional D, for vectors).
    """

    def __init__(self, width: int = 128, depth: int = 3, in_dim: int = 2, dropout: float = 0.0,
                 mbstd: bool = False, mbstd_group: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        d_in = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev(mbstd_group) if mbstd else None
        self.head = nn.Linear(d_in + (1 if mbstd else 0), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, width)
        if self.mbstd is not None:
            h = self.mbstd(h[:, :, None, None]).flatten(1)  # (N, width + 1)
        return self.head(h).flatten()
