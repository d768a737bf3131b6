"""DCGAN generator and discriminator for 16-256 px images with 1-4 channels, optionally class-conditional.

Generator: z (N, z_dim) -> 4x4 by a transposed convolution, then one stride-2 transposed
convolution per doubling up to the resolution, BatchNorm + ReLU between, tanh at the end.
Discriminator: the mirror image with stride-2 convolutions and LeakyReLU(0.2), no
normalisation on the first layer, and a final 4x4 convolution that returns one logit per
image (no sigmoid: the losses work on logits for numerical stability).
Widths double at each halving of the spatial size, capped at 8x the base width.

Class-conditional networks (``num_classes`` K > 0) take labels c (N,) in 0..K-1:

* G, with ``g_norm`` "batch" or "group": conditional normalisation, as in cGANs with a
  projection discriminator (Miyato & Koyama 2018), SNGAN and BigGAN: every normalisation layer
  loses its own affine and gets a per-class gain and bias, initialised to 1 and 0. The label
  then acts at every resolution, which a label fed only to the first layer does not; GroupNorm's
  affine is per channel like BatchNorm's, so the same per-class gain and bias apply to it.
  With ``g_norm`` "none" there is no normalisation to condition: a learned label embedding
  of z_dim values (initialised N(0, 1), the scale of z) is concatenated to z instead.
* D: projection discriminator (Miyato & Koyama 2018): logit = psi(phi(x)) + <embed(c), h>,
  where phi(x) is the (N, w, 4, 4) feature map before the last layer (before the minibatch
  standard-deviation channel) and h its sum over the 4x4 positions. psi stays DCGAN's final 4x4
  convolution (a linear function of the whole map, of which a linear layer on h is the special
  case of equal weights at every position), so a conditional D is the unconditional one plus the
  projection term. The embedding is initialised N(0, 0.02) like the convolutions and spectrally
  normalised with them. It uses no BatchNorm, so it works with every ``d_norm``, dropout and
  minibatch standard deviation.
* D's auxiliary classifier (``d_classifier``, AC-GAN, Odena et al. 2017): a linear layer from the mean
  of phi(x) over the 4x4 positions to K class logits, returned beside the real/fake logit when D is
  called with ``classes=True``. The steps train it on the real images' labels and G to make its images
  classified as the class asked for (``reg.class_weight``): a second, explicit push toward the class
  besides the projection term, which a noisy private D conveys weakly.

Unconditional networks (K = 0) are exactly the classic ones: same layers, parameter names,
initialisation order and outputs; the class-conditional parts are not created.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import (
    ConditionalNorm2d,
    NORMS,
    MinibatchStdDev,
    apply_spectral_norm,
    check_channels,
    check_labels,
    class_rows,
    check_norm,
    check_num_classes,
    check_resolution,
    dcgan_init_,
    make_norm,
)
from .registry import check_option_values, register_model


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
        self.num_classes = check_num_classes(cfg.num_classes)
        conditional_norm = self.num_classes > 0 and check_norm(cfg.g_norm) != "none"
        embed_label = self.num_classes > 0 and not conditional_norm

        def norm(channels: int) -> nn.Module:
            if conditional_norm:
                return ConditionalNorm2d(cfg.g_norm, channels, self.num_classes)
            return make_norm(cfg.g_norm, channels)

        z_in = cfg.z_dim * (2 if embed_label else 1)  # z, then the label embedding when it is concatenated
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_in, widths[0], 4, 1, 0, bias=False),  # (N, w0, 4, 4)
            norm(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),  # doubles H and W
                norm(w_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)  # conditional gains and biases keep their 1 and 0
        self.embed = nn.Embedding(self.num_classes, cfg.z_dim) if embed_label else None  # N(0, 1)
        if cfg.g_spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        # z: (N, z_dim), c: (N,) labels or None -> images (N, C, R, R) in [-1, 1]
        c = check_labels(c, self.num_classes, len(z), weights=True)  # labels or class weights
        if c is None:
            return self.net(z[:, :, None, None])
        if self.embed is not None:
            z = torch.cat([z, class_rows(self.embed.weight, c).to(z.dtype)], dim=1)  # (N, 2 * z_dim)
        x = z[:, :, None, None]
        for layer in self.net:
            x = layer(x, c) if isinstance(layer, ConditionalNorm2d) else layer(x)
        return x


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        check_channels(cfg.channels)
        stages = check_resolution(cfg.resolution) - 2
        widths = _widths(cfg.d_width, stages)
        self.num_classes = check_num_classes(cfg.num_classes)
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
        self._n_features = len(layers)  # net[:_n_features]: x -> features (N, w, 4, 4)
        if cfg.d_mbstd:
            layers.append(MinibatchStdDev())  # (N, w + 1, 4, 4)
        layers.append(nn.Conv2d(widths[-1] + int(cfg.d_mbstd), 1, 4, 1, 0, bias=False))  # (N, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        if cfg.d_spectral_norm:
            apply_spectral_norm(self)
        self.embed = None
        if self.num_classes > 0:
            self.embed = nn.Embedding(self.num_classes, widths[-1])  # projection: one w-vector per class
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
            if cfg.d_spectral_norm:
                from torch.nn.utils.parametrizations import spectral_norm

                spectral_norm(self.embed)
        self.classifier = None
        if cfg.d_classifier:
            if self.num_classes == 0:
                raise ValueError("model.d_classifier predicts classes: it needs a class-conditional model")
            self.classifier = nn.Linear(widths[-1], self.num_classes)  # mean of phi(x) -> K class logits
            nn.init.normal_(self.classifier.weight, 0.0, 0.02)
            nn.init.zeros_(self.classifier.bias)
            if cfg.d_spectral_norm:
                from torch.nn.utils.parametrizations import spectral_norm

                spectral_norm(self.classifier)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None,
                classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # x: (N, C, R, R) in [-1, 1], c: (N,) labels or None -> logits (N,);
        # classes=True (a D with a classifier head): (logits (N,), class logits (N, K))
        c = check_labels(c, self.num_classes, len(x))
        if classes and self.classifier is None:
            raise ValueError("this D has no classifier head (model.d_classifier)")
        if c is None and not classes:
            return self.net(x).flatten()
        h = x
        for layer in self.net[: self._n_features]:
            h = layer(h)  # (N, w, 4, 4)
        out = h
        for layer in self.net[self._n_features:]:
            out = layer(out)  # (N, 1, 1, 1)
        logits = out.flatten()
        if c is not None:
            projection = (self.embed(c).float() * h.float().sum(dim=(2, 3))).sum(dim=1)  # <embed(c), h>, (N,)
            logits = logits + projection.to(out.dtype)
        if not classes:
            return logits
        return logits, self.classifier(h.mean(dim=(2, 3)))  # (N,), (N, K)


@register_model("dcgan", generator=DCGANGenerator, discriminator=DCGANDiscriminator, data="images")
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
    num_classes: int = 0  # 0: unconditional; K: conditioned on class labels 0..K-1
    d_classifier: bool = False  # D also predicts the class (AC-GAN head), trained with reg.class_weight

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values the types do not catch, checked before any data is loaded."""
        check_option_values(self, positive=("z_dim", "g_width", "d_width"), fractions=("d_dropout",),
                            choices={"g_norm": NORMS, "d_norm": NORMS})
