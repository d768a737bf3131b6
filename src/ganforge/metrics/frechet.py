"""Fréchet distance between two Gaussians fitted to feature sets (FID when the features are Inception's).

FD = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)).
Tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which are real
and non-negative because S1 S2 is similar to the PSD matrix S1^(1/2) S2 S1^(1/2); tiny negative
or imaginary parts from rounding are dropped. Everything is computed in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GaussianStats:
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> "GaussianStats":
        """features: (N, D) -> mean and unbiased covariance."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"need a (N >= 2, D) feature array, got shape {f.shape}")
        return cls(mu=f.mean(axis=0), sigma=np.cov(f, rowvar=False), count=len(f))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    diff = a.mu - b.mu
    eigenvalues = np.linalg.eigvals(a.sigma @ b.sigma)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt)
