"""Exponential moving average of the generator's weights, used for sampling and evaluation.

Averaging G's recent weights smooths out the oscillation of adversarial training and
usually gives better samples than the last iterate. The decay is set by a half-life in
images seen (``ema_kimg``, thousands of images), so it means the same at any batch size:
beta = 0.5 ** (batch_size / (1000 * ema_kimg)).

BatchNorm and the average. Running statistics describe the activations of the weights that
produced them: the live G's statistics do not fit the averaged weights (measured on
Fashion-MNIST: FD 4.70 with the live statistics, 3.95 with recomputed ones). So the averaged
G's statistics are recomputed ("standing statistics", as BigGAN does) before it is used:
:func:`~ganforge.models.batchnorm.recompute_batchnorm_stats` runs it in train mode over
``STAT_BATCHES`` batches of noise (:func:`~ganforge.models.batchnorm.standing_noise`) and keeps
the cumulative average of the per-batch means and variances. :class:`EMA` marks its
statistics stale at every update and refreshes them on demand (``EMA.ready()``), so samples,
evaluations and saved checkpoints always see fitted statistics while training pays nothing
between uses. The noise comes from a fixed seed, so the statistics are a function of the
weights alone and never touch the training run's random streams (resume stays bit-exact).
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

from ..models.batchnorm import (  # re-exported: they lived here before
    STAT_BATCHES,
    STAT_SEED,
    batchnorm_layers,
    recompute_batchnorm_stats,
    standing_noise,
)

__all__ = ["EMA", "STAT_BATCHES", "STAT_SEED", "batchnorm_layers", "recompute_batchnorm_stats"]


class EMA:
    """The averaged generator ``self.model``; call :meth:`ready` before using it."""

    def __init__(self, model: nn.Module, ema_kimg: float, batch_size: int, z_dim: int | None = None,
                 stat_batches: int = STAT_BATCHES, num_classes: int = 0, processes: int = 1):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.batch_size, self.z_dim, self.stat_batches = batch_size, z_dim, stat_batches
        self.count_processes(processes, ema_kimg)
        self.num_classes = num_classes  # > 0: a class-conditional G, fed balanced labels
        self.has_batchnorm = bool(batchnorm_layers(self.model))
        self.stale = self.has_batchnorm  # running statistics not yet fitted to the averaged weights
        self.target: tuple[list[torch.Tensor], float] | None = None  # ((1 - s) * anchor, s), see follow()

    def follow(self, anchor: Sequence[torch.Tensor] | None, scale: float = 1.0) -> None:
        """Average ``anchor + scale * (G - anchor)`` from now on instead of G's parameters (None or scale 1: G
        itself). A federated site calls it with the round's global G and the server's learning rate η: the server
        moves G by η times the sites' mean change, so the point to average is where G will be, not where the
        site's G is; the server then takes the plain mean of the sites' averages (linear, so exact for FedAvg)."""
        if anchor is None or scale == 1:
            self.target = None
        else:  # anchor + s * (G - anchor) = s * G + (1 - s) * anchor: the second term fixed for the round
            self.target = (torch._foreach_mul([a.detach() for a in anchor], 1.0 - scale), float(scale))

    def count_processes(self, processes: int, ema_kimg: float | None = None) -> None:
        """Count ``batch_size * processes`` images per update, keeping the half-life in images (``ema_kimg``, or
        the current one). The processes are DDP's ranks, or a federation's sites: K sites that each take a step
        of ``batch_size`` images move the averaged global model about as far as one step of K x batch_size."""
        self.images_per_update = self.batch_size * processes
        self.set_half_life(self.ema_kimg if ema_kimg is None else ema_kimg)

    def set_half_life(self, ema_kimg: float) -> None:
        """Half-life in thousands of images; 0: the average is G itself (scheduled half-lives start there)."""
        self.ema_kimg = ema_kimg
        self.beta = 0.5 ** (self.images_per_update / (1000.0 * ema_kimg)) if ema_kimg > 0 else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params, params = list(self.model.parameters()), list(model.parameters())
        if self.target is not None:
            offset, scale = self.target
            params = torch._foreach_add(offset, params, alpha=scale)
        torch._foreach_lerp_(ema_params, params, 1.0 - self.beta)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)  # non-BatchNorm buffers (e.g. spectral norm's vectors) follow the live G
        self.stale = self.has_batchnorm

    def noise_batches(self, device: torch.device) -> list[tuple[torch.Tensor, ...]]:
        """The fixed inputs of the standing statistics: stat_batches x ((batch_size, z_dim) noise,
        and (batch_size,) balanced labels for a conditional G)."""
        if self.z_dim is None:
            raise ValueError("EMA needs z_dim to recompute BatchNorm statistics")
        return standing_noise(self.batch_size, self.z_dim, self.num_classes, device, batches=self.stat_batches)

    def ready(self, autocast: Callable | None = None) -> nn.Module:
        """The averaged G with BatchNorm statistics fitted to its current weights, in eval mode."""
        if self.stale:
            device = next(self.model.parameters()).device
            recompute_batchnorm_stats(self.model, self.noise_batches(device), autocast)
            self.stale = False
        return self.model.eval()
