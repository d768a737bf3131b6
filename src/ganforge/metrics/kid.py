"""Kernel Inception Distance (KID): an unbiased estimate of the squared MMD between two feature sets.

Bińkowski et al. (2018), "Demystifying MMD GANs", with the polynomial kernel

    k(x, y) = (gamma * x·y + coef0) ** degree,   gamma = 1 / D by default (D: feature size),

and, for two subsets X (real) and Y (fake) of m samples each, the unbiased estimator

    MMD² = sum_{i≠j} k(x_i, x_j) / (m(m-1)) + sum_{i≠j} k(y_i, y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i, y_j) / m²

(the cross term keeps its diagonal, as in the paper's reference code, torch-fidelity and torchmetrics).
It is averaged over ``subsets`` random subsets, each drawn without replacement from each set; the
result is the mean and the (population, ddof=0) standard deviation over subsets, as those
implementations report. Subsets are drawn as torch-fidelity draws them, so with ``seed=2020``
(its default) the same features give torch-fidelity's values. Being unbiased, the estimate is
about 0 for two samples of the same distribution and can then be slightly negative.
Computed in float64.
"""
from __future__ import annotations

import numpy as np

from ..errors import GanforgeError


def _as_features(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise GanforgeError(f"KID needs {name} features of shape (N >= 2, D), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise GanforgeError(f"KID: the {name} features contain NaN or infinite values")
    return a


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(gamma x·y + coef0) ** degree for every pair of rows: (n, D), (m, D) -> (n, m)."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD² between two equally sized sets (m, D) with the polynomial kernel."""
    m = len(x)
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD² over ``subsets`` random subsets of both feature sets.

    real, fake: (N, D) feature arrays (any N >= 2, same D). ``subset_size`` is capped at
    ``min(len(real), len(fake))``; subsets are drawn without replacement with
    ``np.random.RandomState(seed)``, so the result is reproducible.
    """
    x, y = _as_features("real", real), _as_features("fake", fake)
    if x.shape[1] != y.shape[1]:
        raise GanforgeError(f"KID: real features have {x.shape[1]} values and fake ones {y.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise GanforgeError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, len(x), len(y))
    # Drawn as torch-fidelity draws them (legacy RandomState, real subset then fake subset), so with
    # its default seed (2020) and the same features the subsets, and so the values, are the same.
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        values[i] = mmd2_unbiased(xs, ys, degree, gamma, coef0)
    return float(values.mean()), float(values.std())
