"""Small fully connected G and D for 2-D point sets (the Gaussian-mixture mode-collapse tests).

Registered as ``mlp`` (data "points"). PyTorch's default initialisation of linear layers.
Class-conditional networks (``num_classes`` K > 0): G concatenates a learned label embedding
(z_dim values, initialised N(0, 1) like z) to z, as it has no normalisation layer to condition;
D is a projection discriminator (Miyato & Koyama 2018): logit = head(h) + <embed(c), h>, h the
last hidden features (before the minibatch standard-deviation feature).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import MinibatchStdDev, apply_spectral_norm, check_labels, check_num_classes, class_rows
from .registry import check_option_values, register_model


class MLPGenerator(nn.Module):
    """z (N, z_dim), c (N,) or None -> points (N, dim)."""

    def __init__(self, cfg: MLPConfig | None = None):
        super().__init__()
        cfg = cfg or MLPConfig()
        self.z_dim = cfg.z_dim
        self.num_classes = check_num_classes(cfg.num_classes)
        layers: list[nn.Module] = []
        d_in = cfg.z_dim * (2 if self.num_classes else 1)  # z, then the label embedding
        for _ in range(cfg.g_depth):
            layers += [nn.Linear(d_in, cfg.g_width), nn.ReLU()]
            d_in = cfg.g_width
        layers.append(nn.Linear(d_in, cfg.dim))
        self.net = nn.Sequential(*layers)
        self.embed = nn.Embedding(self.num_classes, cfg.z_dim) if self.num_classes else None
        if cfg.g_spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = check_labels(c, self.num_classes, len(z), weights=True)  # labels or class weights
        if c is not None:
            z = torch.cat([z, class_rows(self.embed.weight, c).to(z.dtype)], dim=1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (N, dim), c (N,) or None -> logits (N,).

    ``d_dropout`` follows each hidden layer; ``d_mbstd`` appends, before the last layer, the standard
    deviation of the hidden features over groups of ``d_mbstd_group`` samples (the minibatch
    standard-deviation feature of the convolutional D, for vectors).
    """

    def __init__(self, cfg: MLPConfig | None = None):
        super().__init__()
        cfg = cfg or MLPConfig()
        self.num_classes = check_num_classes(cfg.num_classes)
        layers: list[nn.Module] = []
        d_in = cfg.dim
        for _ in range(cfg.d_depth):
            layers += [nn.Linear(d_in, cfg.d_width), nn.LeakyReLU(0.2)]
            if cfg.d_dropout > 0:
                layers.append(nn.Dropout(cfg.d_dropout))
            d_in = cfg.d_width
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev(cfg.d_mbstd_group) if cfg.d_mbstd else None
        self.head = nn.Linear(d_in + (1 if cfg.d_mbstd else 0), 1)
        if cfg.d_spectral_norm:
            apply_spectral_norm(self)
        self.embed = None
        if self.num_classes:
            self.embed = nn.Embedding(self.num_classes, d_in)  # projection: one vector per class
            bound = 1 / math.sqrt(d_in)  # the scale of the head's default initialisation
            nn.init.uniform_(self.embed.weight, -bound, bound)
            if cfg.d_spectral_norm:
                from torch.nn.utils.parametrizations import spectral_norm

                spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = check_labels(c, self.num_classes, len(x))
        h = self.features(x)  # (N, width)
        out = h
        if self.mbstd is not None:
            out = self.mbstd(h[:, :, None, None]).flatten(1)  # (N, width + 1)
        logits = self.head(out).flatten()
        if c is not None:
            logits = logits + (self.embed(c).to(h.dtype) * h).sum(dim=1)  # <embed(c), h>
        return logits


@register_model("mlp", generator=MLPGenerator, discriminator=MLPDiscriminator, data="points")
@dataclass
class MLPConfig:
    """The 2-D point networks' options (names shared with the DCGAN config where they mean the same)."""

    dim: int = 2  # size of a point: G's output, D's input
    z_dim: int = 2
    g_width: int = 128
    d_width: int = 128
    g_depth: int = 3  # hidden layers
    d_depth: int = 3
    g_spectral_norm: bool = False
    d_spectral_norm: bool = False  # spectral normalisation of every D layer (projection embedding included)
    d_dropout: float = 0.0  # dropout after each hidden D layer
    d_mbstd: bool = False  # minibatch standard-deviation feature before D's last layer
    d_mbstd_group: int = 4
    num_classes: int = 0  # 0: unconditional; K: conditioned on class labels 0..K-1

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values the types do not catch."""
        check_option_values(self, positive=("dim", "z_dim", "g_width", "d_width", "g_depth", "d_depth",
                                            "d_mbstd_group"), fractions=("d_dropout",))
