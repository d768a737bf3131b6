"""Exponential moving average of the generator's weights, used for sampling and evaluation.

Averaging G's recent weights smooths out the oscillation of adversarial training and
usually gives better samples than the last iterate. The decay is set by a half-life in
images seen (``ema_kimg``, thousands of images), so it means the same at any batch size:
beta = 0.5 ** (batch_size / (1000 * ema_kimg)). Buffers (BatchNorm running statistics) are
copied from the live generator, since they describe activations rather than weights.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, ema_kimg: float, batch_size: int):
        self.beta = 0.5 ** (batch_size / (1000.0 * ema_kimg))
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, list(model.parameters()), 1.0 - self.beta)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)
