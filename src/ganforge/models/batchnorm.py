"""Standing BatchNorm statistics: running statistics recomputed for a model's current weights.

Running statistics describe the activations of the weights that produced them, so a generator
whose weights were changed afterwards (the moving average of G, see :mod:`ganforge.training.ema`)
needs them recomputed ("standing statistics", as BigGAN does) before it is used:
:func:`recompute_batchnorm_stats` runs it in train mode over batches of inputs and keeps the
cumulative average of the per-batch means and variances. :func:`standing_noise` gives those
inputs: ``STAT_BATCHES`` batches of noise from a fixed seed (and balanced labels for a
class-conditional G), so the statistics are a function of the weights alone and never touch
any other random stream. Training and :func:`ganforge.sampling.load_generator` (for averages
saved by older versions) both use these, so they compute the same statistics.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..labels import balanced_labels

STAT_BATCHES = 50  # noise batches for the standing statistics
STAT_SEED = 2**31 - 7  # the standing statistics' own noise stream


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, batches: Iterable[tuple], autocast: Callable = None) -> int:
    """Reset every BatchNorm's running statistics and set them to the cumulative average over ``batches``.

    Each item of ``batches`` is the argument tuple of one forward call, e.g. ``(z,)``. With
    ``momentum=None`` PyTorch keeps the plain average of the batch means and of the unbiased
    batch variances, which is what BigGAN's standing statistics use. Returns the number of
    BatchNorm layers updated (0: nothing to do, the model is left untouched).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    try:
        for args in batches:
            if autocast is not None:
                with autocast():
                    model(*args)
            else:
                model(*args)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(layers)


def standing_noise(batch_size: int, z_dim: int, num_classes: int, device: torch.device | str,
                   batches: int = STAT_BATCHES, seed: int = STAT_SEED) -> list[tuple[torch.Tensor, ...]]:
    """The fixed inputs of the standing statistics: ``batches`` x ((batch_size, z_dim) noise, and
    (batch_size,) balanced labels when ``num_classes`` > 0, i.e. for a conditional G), on ``device``."""
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same noise on every device
    out = []
    for _ in range(batches):
        z = torch.randn(batch_size, z_dim, generator=gen).to(device)
        labels = (balanced_labels(batch_size, num_classes).to(device),) if num_classes else ()
        out.append((z, *labels))
    return out
