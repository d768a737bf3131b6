"""The classes a private conditional G is trained on.

Without DP, G draws its classes from the real batch, i.e. from the private labels. Under DP, G must
see only what is private already, so its classes come from a public distribution: uniform (costs
nothing, right for balanced data) or a Gaussian-noised histogram of the labels, released once at the
start and accounted as one Gaussian mechanism of L2 sensitivity 1 (adding or removing one record
changes one count by 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LABEL_MODES = ("uniform", "histogram")


@dataclass
class ReleasedLabels:
    probs: torch.Tensor  # (K,) float32, the distribution G's classes are drawn from
    counts: list[int] | None  # the released (noisy, rounded, non-negative) counts; None when uniform
    history: list[tuple[float, float, int]]  # its privacy cost, in accountant history entries


def release_labels(labels: torch.Tensor, num_classes: int, mode: str, noise: float,
                   generator: torch.Generator) -> ReleasedLabels:
    """labels (N,) int64 on the CPU -> the public class distribution for ``mode`` (see module doc)."""
    if mode == "uniform":
        return ReleasedLabels(torch.full((num_classes,), 1.0 / num_classes), None, [])
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()  # (K,)
    noisy = (counts + noise * torch.randn(num_classes, generator=generator, dtype=torch.float64)).clamp(min=0)
    if noisy.sum() <= 0:  # all noise: nothing was learnt, fall back to uniform (post-processing, free)
        noisy = torch.ones(num_classes, dtype=torch.float64)
    probs = (noisy / noisy.sum()).float()
    return ReleasedLabels(probs, [int(round(v)) for v in noisy.tolist()], [(float(noise), 1.0, 1)])
