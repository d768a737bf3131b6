"""One discriminator update and one generator update.

These are plain functions of (networks, optimiser, batch) so that wrappers for several
GPUs (DDP), differential privacy or federated training can reuse them unchanged. They
return detached tensors, never Python numbers: reading a value forces the host to wait
for the device, so the loop does it only at log intervals.
"""
from __future__ import annotations

import torch
from torch import nn

from ..losses import d_loss, g_loss
from .runtime import Precision


def d_step(
    D: nn.Module,
    d_opt: torch.optim.Optimizer,
    real: torch.Tensor,  # (N, C, R, R) in [-1, 1]
    fake: torch.Tensor,  # (N, C, R, R), detached from G's graph
    loss_name: str,
    precision: Precision,
) -> dict[str, torch.Tensor]:
    """Minimise L_D = -E[log D(x)] - E[log(1 - D(G(z)))] with one summed backward pass."""
    with precision.autocast():
        real_logits = D(real)  # (N,)
        fake_logits = D(fake)  # (N,)
        loss = d_loss(loss_name, real_logits, fake_logits)
    d_opt.zero_grad(set_to_none=True)
    loss.backward()
    d_opt.step()
    return {
        "loss_d": loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),  # mean D(x)
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),  # mean D(G(z)) before the update
    }


def g_step(
    D: nn.Module,
    g_opt: torch.optim.Optimizer,
    fake: torch.Tensor,  # (N, C, R, R), still attached to G's graph
    loss_name: str,
    precision: Precision,
) -> dict[str, torch.Tensor]:
    """Minimise G's loss on D's view of ``fake``; D's weights get no gradient."""
    D.requires_grad_(False)  # skip D's weight gradients: only G is updated here
    try:
        with precision.autocast():
            fake_logits = D(fake)
            loss = g_loss(loss_name, fake_logits)
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        g_opt.step()
    finally:
        D.requires_grad_(True)
    return {"loss_g": loss.detach()}


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) from an :class:`~ganforge.config.OptimizerConfig`."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
