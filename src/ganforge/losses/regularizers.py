"""Regularisers for D (and helpers for clipping and monitoring)."""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class PenaltyInputs:
    """What a D penalty may read, from one D update (see :data:`D_PENALTIES`)."""

    reg: object  # the RegularizerConfig
    real: torch.Tensor  # (N, C, R, R) float32; requires_grad when a penalty takes its input gradient
    fake: torch.Tensor
    real_logits: torch.Tensor  # (N,) D's logits of real and fake, as its loss saw them
    fake_logits: torch.Tensor
    D: Callable[[torch.Tensor], torch.Tensor]  # images -> logits (with the batch's labels bound)
    view: Callable[[torch.Tensor], torch.Tensor]  # images -> what D sees (instance noise, augmentation)
    rng: torch.Generator | None


@dataclass(frozen=True)
class DPenalty:
    """A penalty added to D's loss: ``applies(reg, step)`` says whether D update number ``step`` adds it,
    ``value(inputs)`` is its weighted value. ``input_grad`` names the batch ("real" or "fake") whose D pass
    it differentiates: that pass then runs in float32 with the images requiring a gradient. Every penalty
    takes an input gradient with ``create_graph`` (a double backward)."""

    applies: Callable[[object, int], bool]
    value: Callable[[PenaltyInputs], torch.Tensor]
    input_grad: str | None = None


def _lazy(gamma: str) -> Callable[[object, int], bool]:
    """On every ``reg.r_interval``-th D update while ``reg.<gamma>`` is on (lazy regularisation)."""
    return lambda reg, step: getattr(reg, gamma) > 0 and step % reg.r_interval == 0


def _gp_value(p: PenaltyInputs) -> torch.Tensor:
    with torch.autocast(p.real.device.type, enabled=False):  # its own passes, in float32
        return p.reg.gp_weight * gradient_penalty(p.D, p.real.detach(), p.fake.detach(), p.rng, view=p.view)


# D's penalties by name, added to its loss in this order. The lazy ones are scaled up by their interval.
D_PENALTIES: dict[str, DPenalty] = {
    "r1": DPenalty(_lazy("r1_gamma"), input_grad="real", value=lambda p: (
        p.reg.r1_gamma / 2 * p.reg.r_interval * r1_penalty(p.real_logits, p.real).mean())),
    "r2": DPenalty(_lazy("r2_gamma"), input_grad="fake", value=lambda p: (
        p.reg.r2_gamma / 2 * p.reg.r_interval * r2_penalty(p.fake_logits, p.fake).mean())),
    "gp": DPenalty(lambda reg, step: reg.gp_weight > 0, _gp_value),
}


def active_penalties(reg, step: int) -> list[DPenalty]:
    """The penalties D update number ``step`` adds, in :data:`D_PENALTIES` order."""
    return [penalty for penalty in D_PENALTIES.values() if penalty.applies(reg, step)]


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float) -> None:
    """WGAN weight clipping: clamp every parameter to [-c, c] in place."""
    for p in module.parameters():
        p.clamp_(-c, c)


def instance_noise(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """images + N(0, std^2) noise (given to D's real and fake inputs alike)."""
    return images + std * torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)


def paired_halves(n: int) -> tuple[slice, slice]:
    """The two halves of a batch of n that the mode-seeking term compares: sample i of the first with
    sample i of the second (for odd n the middle sample is in neither)."""
    h = n // 2
    return slice(0, h), slice(n - h, n)


def mode_seeking_ratio(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's (Mao et al. 2019) ratio mean|G(z1) - G(z2)| / mean|z1 - z2| over the batch's pairs
    (:func:`paired_halves`; a conditional batch must give each pair one class). A G that maps different
    noise to the same image, the within-class mode collapse, has a ratio near 0. fake: (N, C, R, R),
    z: (N, z_dim) -> 0-dim float32."""
    first, second = paired_halves(len(fake))
    image_gap = (fake[first].float() - fake[second].float()).abs().mean()
    noise_gap = (z[first].float() - z[second].float()).abs().mean()
    return image_gap / noise_gap


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, weight: float, eps: float = 1e-5) -> torch.Tensor:
    """weight / (ratio + eps), the term MSGAN adds to G's loss: minimising it spreads G's images apart
    as its noise inputs are apart. It reads only G's samples, never data."""
    return weight / (mode_seeking_ratio(fake, z) + eps)


def grad_norm(parameters) -> torch.Tensor:
    """Total L2 norm of the existing gradients as a 0-dim tensor (no host synchronisation).

    Clipping uses ``torch.nn.utils.clip_grad_norm_``, which returns the same norm before clipping.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
