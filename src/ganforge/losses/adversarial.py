"""Adversarial losses on logits.

D outputs a logit l with D(x) = sigmoid(l). Using log sigmoid(l) = -softplus(-l) and
log(1 - sigmoid(l)) = -softplus(l) keeps every term finite for any logit, where the
textbook Sigmoid + log form returns -inf once D saturates.

The minimax game: D maximises V = E[log D(x)] + E[log(1 - D(G(z)))], i.e. minimises
    L_D = softplus(-l_real).mean() + softplus(l_fake).mean()
G either minimises E[log(1 - D(G(z)))] ("saturating", the original minimax form, whose
gradient vanishes while D confidently rejects the fakes), or minimises -E[log D(G(z))]
("nonsaturating", the default, same fixed point with strong early gradients):
    saturating:    L_G = -softplus(l_fake).mean()
    nonsaturating: L_G =  softplus(-l_fake).mean()
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def _d_minimax(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _g_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return -F.softplus(fake_logits).mean()


def _g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


D_LOSSES = {"minimax": _d_minimax}
G_LOSSES = {"nonsaturating": _g_nonsaturating, "saturating": _g_saturating}


def d_loss(name: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss (to minimise). real_logits, fake_logits: (N,) -> scalar."""
    try:
        fn = D_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown D loss {name!r}; choose one of {', '.join(D_LOSSES)}") from None
    return fn(real_logits.float(), fake_logits.float())


def g_loss(name: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss (to minimise). fake_logits: (N,) -> scalar."""
    try:
        fn = G_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown G loss {name!r}; choose one of {', '.join(G_LOSSES)}") from None
    return fn(fake_logits.float())
