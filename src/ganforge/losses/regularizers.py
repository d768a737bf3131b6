"""Regularisers for D (and helpers for clipping and monitoring)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def _input_grad_sq_norm(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample ||d outputs_i / d inputs_i||^2, keeping the graph for the backward pass. -> (N,)"""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1)


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1: ||grad_x D(x)||^2 per real sample, (N,). The caller scales by gamma / 2 and averages.

    ``real_images`` must have been marked ``requires_grad`` before D saw them.
    """
    return _input_grad_sq_norm(real_logits, real_images)


def r2_penalty(fake_logits: torch.Tensor, fake_images: torch.Tensor) -> torch.Tensor:
    """R2: the same penalty on generated samples, (N,)."""
    return _input_grad_sq_norm(fake_logits, fake_images)


def gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, view=None) -> torch.Tensor:
    """WGAN-GP: E[(||grad D(x_hat)||_2 - 1)^2] with x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per sample.

    ``view`` (optional) maps images to what D sees (augmentation, instance noise); the gradient
    is still taken with respect to x_hat, through it. The caller chooses the precision (float32).
    """
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    logits = D(view(x_hat) if view is not None else x_hat)
    norms = _input_grad_sq_norm(logits, x_hat).add(1e-12).sqrt()
    return (norms - 1).pow(2).mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float) -> None:
    """WGAN weight clipping: clamp every parameter to [-c, c] in place."""
    for p in module.parameters():
        p.clamp_(-c, c)


def instance_noise(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """images + N(0, std^2) noise (given to D's real and fake inputs alike)."""
    return images + std * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)


def grad_norm(parameters) -> torch.Tensor:
    """Total L2 norm of the existing gradients as a 0-dim tensor (no host synchronisation).

    Clipping uses ``torch.nn.utils.clip_grad_norm_``, which returns the same norm before clipping.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
