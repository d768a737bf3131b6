"""Differentiable augmentation of D's inputs, for small data sets.

Every augmentation is applied to real and generated images alike and is differentiable with
respect to the images, so G is trained through it and does not learn to produce augmented
images. Each one is applied to each sample with probability ``p``. Random parameters come from a
``torch.Generator`` so runs are reproducible and resume exactly.

* translation: shift by up to 1/8 of the image size, zero-filled;
* cutout: zero a random square of half the image size;
* colour: brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] (images in [-1, 1]).

:class:`AdaptiveAugment` adapts ``p`` from D's overfitting heuristic r_t = E[sign(margin)] over
the real images, where the margin is positive when D judges a real image real
(:func:`ganforge.losses.adversarial.decision_margin`: the logit for the logistic and hinge
losses, as in the ADA reference; logit - 0.5 for least squares; D(x) - D(G(z)) for the
relativistic loss). When D is too sure of the real images (r_t above the target 0.6)
augmentation increases. p starts at 0, as in the reference.
"""
from __future__ import annotations

import torch

POLICIES = ("translation", "cutout", "colour")


def _rand(n: int, x: torch.Tensor, gen) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=x.device, dtype=torch.float32)


def brightness(x, gen):
    return x + (_rand(len(x), x, gen) - 0.5).to(x.dtype).view(-1, 1, 1, 1)


def saturation(x, gen):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(len(x), x, gen) * 2).to(x.dtype).view(-1, 1, 1, 1) + mean


def contrast(x, gen):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(len(x), x, gen) + 0.5).to(x.dtype).view(-1, 1, 1, 1) + mean


def colour(x, gen):
    return contrast(saturation(brightness(x, gen), gen), gen)


def translation(x: torch.Tensor, gen, ratio: float = 0.125) -> torch.Tensor:
    """(N, C, H, W) -> each image shifted by its own integer offset, zero-filled."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (_rand(n, x, gen) * (2 * max_dy + 1)).long() - max_dy  # (N,)
    dx = (_rand(n, x, gen) * (2 * max_dx + 1)).long() - max_dx
    rows = (torch.arange(h, device=x.device)[None] - dy[:, None] + 1).clamp(0, h + 1)  # (N, H) in padded coords
    cols = (torch.arange(w, device=x.device)[None] - dx[:, None] + 1).clamp(0, w + 1)  # (N, W)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # zero border that out-of-range indices land on
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    half_h, half_w = h * ratio / 2, w * ratio / 2
    cy = _rand(n, x, gen).mul(h).view(-1, 1, 1)
    cx = _rand(n, x, gen).mul(w).view(-1, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, -1, 1) + 0.5
    xs = torch.arange(w, device=x.device).view(1, 1, -1) + 0.5
    hole = ((ys - cy).abs() < half_h) & ((xs - cx).abs() < half_w)  # (N, H, W)
    return x * (~hole).unsqueeze(1).to(x.dtype)


_AUGMENTS = {"translation": translation, "cutout": cutout, "colour": colour}


class DiffAugment:
    """``DiffAugment("translation,cutout,colour", p)(images, generator)``."""

    def __init__(self, policy: str = "translation,cutout,colour", p: float | torch.Tensor = 1.0):
        self.policy = [name.strip() for name in policy.split(",") if name.strip()]
        unknown = set(self.policy) - set(_AUGMENTS)
        if unknown:
            raise ValueError(f"unknown augmentation(s): {', '.join(sorted(unknown))}")
        self.p = p

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images
        for name in self.policy:
            augmented = _AUGMENTS[name](x, generator)
            apply = (_rand(len(x), x, generator) < self.p).view(-1, 1, 1, 1)  # per sample
            x = torch.where(apply, augmented, x)
        return x


class AdaptiveAugment:
    """Keeps the augmentation probability p where D's overfitting signal r_t meets the target.

    ``update`` accumulates sign(margin) of the real images on the device (no host
    synchronisation); ``adjust``, called every few steps with the number of images seen since
    the last call, moves p by sign(r_t - target) * images / (speed_kimg * 1000), clamped to [0, 1].
    The reference moves p by at most 1 per 500 kimg; ganforge's default ``ada_kimg`` is 100,
    because a CPU run sees a few hundred kimg in all (a 10-minute run about 300), in which
    the reference speed could raise p by at most about 0.6.
    """

    def __init__(self, target: float = 0.6, speed_kimg: float = 100.0, p: float = 0.0):
        self.target, self.speed_kimg = target, speed_kimg
        self.p = torch.tensor(float(p))
        self._sum = torch.zeros(())
        self._count = torch.zeros(())

    def update(self, margin: torch.Tensor) -> None:
        """margin: (N,) D's decision margin on real images, positive where D judges them real."""
        if self._sum.device != margin.device:
            self._sum, self._count, self.p = (t.to(margin.device) for t in (self._sum, self._count, self.p))
        self._sum += torch.sign(margin.float()).sum()
        self._count += margin.numel()

    def signal_sums(self) -> torch.Tensor:
        """The accumulated (sum of signs, count) as one tensor view, e.g. to sum over DDP ranks in place."""
        if self._sum.device != self._count.device:
            self._count = self._count.to(self._sum.device)
        stacked = torch.stack([self._sum, self._count])
        self._sum, self._count = stacked[0], stacked[1]
        return stacked

    def adjust(self, images: int) -> None:
        r_t = self._sum / self._count.clamp(min=1)
        step = torch.sign(r_t - self.target) * images / (self.speed_kimg * 1000)
        self.p = (self.p + step * (self._count > 0)).clamp(0, 1)
        self._sum.zero_()
        self._count.zero_()

    def state_dict(self) -> dict:
        return {"p": float(self.p), "sum": float(self._sum), "count": float(self._count)}

    def load_state_dict(self, state: dict) -> None:
        device = self.p.device
        self.p = torch.tensor(state["p"], device=device)
        self._sum = torch.tensor(state["sum"], device=device)
        self._count = torch.tensor(state["count"], device=device)
