"""Adversarial losses on D's raw outputs (logits).

D outputs a logit l with D(x) = sigmoid(l) for the probabilistic losses. Using
log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l) keeps every term finite
for any logit, where the textbook Sigmoid + log form returns -inf once D saturates.

The minimax game: D maximises V = E[log D(x)] + E[log(1 - D(G(z)))], i.e. minimises
    L_D = softplus(-l_real).mean() + softplus(l_fake).mean()
G either minimises E[log(1 - D(G(z)))] ("saturating", the original minimax form, whose
gradient vanishes while D confidently rejects the fakes), or -E[log D(G(z))]
("nonsaturating", the default, same fixed point with strong early gradients).

Other pairs (D loss / G loss):
    wasserstein    E[D(G(z))] - E[D(x)]                  / -E[D(G(z))]
    hinge          E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] / -E[D(G(z))]
    least_squares  0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2]  / 0.5 E[(D(G(z)) - 1)^2]
    relativistic   E[softplus(D(G(z)) - D(x))]            / E[softplus(D(x) - D(G(z)))]   (paired)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def _d_minimax(real: torch.Tensor, fake: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    if label_smoothing:  # one-sided: the real target becomes 1 - s
        target = torch.full_like(real, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _d_wasserstein(real, fake, label_smoothing=0.0):
    return fake.mean() - real.mean()


def _d_hinge(real, fake, label_smoothing=0.0):
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _d_least_squares(real, fake, label_smoothing=0.0):
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def _d_relativistic(real, fake, label_smoothing=0.0):
    return F.softplus(fake - real).mean()  # pairs sample i of each batch


def _g_saturating(fake, real=None):
    return -F.softplus(fake).mean()


def _g_nonsaturating(fake, real=None):
    return F.softplus(-fake).mean()


def _g_linear(fake, real=None):  # wasserstein and hinge
    return -fake.mean()


def _g_least_squares(fake, real=None):
    return 0.5 * ((fake - 1) ** 2).mean()


def _g_relativistic(fake, real=None):
    if real is None:
        raise ValueError("the relativistic G loss needs D's outputs on real images")
    return F.softplus(real - fake).mean()


D_LOSSES = {
    "minimax": _d_minimax, "wasserstein": _d_wasserstein, "hinge": _d_hinge,
    "least_squares": _d_least_squares, "relativistic": _d_relativistic,
}
G_LOSSES = {
    "nonsaturating": _g_nonsaturating, "saturating": _g_saturating, "wasserstein": _g_linear,
    "hinge": _g_linear, "least_squares": _g_least_squares, "relativistic": _g_relativistic,
}
LOSS_PAIRS = {  # the natural (D loss, G loss) pairing of each family
    "minimax": ("minimax", "nonsaturating"),
    "wasserstein": ("wasserstein", "wasserstein"),
    "hinge": ("hinge", "hinge"),
    "least_squares": ("least_squares", "least_squares"),
    "relativistic": ("relativistic", "relativistic"),
}
G_NEEDS_REAL = {"relativistic"}
# G losses that may go with each D loss: its natural partner, plus the saturating form of the
# original minimax game and the "hinge" name of the same linear G loss as Wasserstein's.
COMPATIBLE_G_LOSSES = {
    "minimax": ("nonsaturating", "saturating"),
    "wasserstein": ("wasserstein", "hinge"),
    "hinge": ("hinge", "wasserstein"),
    "least_squares": ("least_squares",),
    "relativistic": ("relativistic",),
}


def check_loss_pair(d_name: str, g_name: str) -> str | None:
    """None when G's loss fits D's, else a one-line reason with the fix."""
    allowed = COMPATIBLE_G_LOSSES.get(d_name, ())
    if g_name in allowed:
        return None
    natural = LOSS_PAIRS[d_name][1]
    return (f"loss.g={g_name} does not fit loss.d={d_name}: G would optimise another game than D; "
            f"set loss.g={natural} (or --loss NAME to set both)")


def decision_margin(name: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Per real sample, a number that is positive when D judges that real image real. -> (N,)

    Adaptive augmentation reads E[sign(margin)] as D's overfitting signal. The ADA reference uses
    sign(D(x)) for its logistic D, whose decision threshold is logit 0; the hinge loss has the
    same threshold (targets -1 / +1). Least squares aims at 0 (fake) / 1 (real), so its threshold
    is 0.5. A relativistic D judges pairs: sigmoid(D(x) - D(G(z))) is its probability that the
    real image is the more realistic one, so the margin is that difference. A Wasserstein critic
    has no threshold at all (its level is free): no margin, and validation refuses ADA with it.
    """
    real = real_logits.float()
    if name in ("minimax", "hinge"):
        return real
    if name == "least_squares":
        return real - 0.5
    if name == "relativistic":
        return real - fake_logits.float()
    raise ConfigError(f"adaptive augmentation has no overfitting signal for the {name} loss; "
                      "use a fixed reg.augment_p instead of reg.ada")


ADA_LOSSES = ("minimax", "hinge", "least_squares", "relativistic")  # losses with a decision_margin


def d_loss(name: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """D's loss (to minimise). real_logits, fake_logits: (N,) -> scalar, in float32."""
    try:
        fn = D_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown D loss {name!r}; choose one of {', '.join(D_LOSSES)}") from None
    return fn(real_logits.float(), fake_logits.float(), label_smoothing)


def g_loss(name: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss (to minimise). fake_logits: (N,) -> scalar, in float32."""
    try:
        fn = G_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown G loss {name!r}; choose one of {', '.join(G_LOSSES)}") from None
    return fn(fake_logits.float(), real_logits.float() if real_logits is not None else None)
