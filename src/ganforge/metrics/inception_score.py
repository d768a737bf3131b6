"""Inception Score (Salimans et al. 2016) from class probabilities.

IS = exp( E_x KL( p(y|x) || p(y) ) ), with p(y) the mean of p(y|x) over the samples of a split.
The samples are cut, in the given order, into ``splits`` contiguous parts at
``i * N // splits`` (all samples used; the same parts as the original code when ``splits``
divides N); the score is computed per part and the mean and population standard deviation
(ddof=0, as in the original code and torch-fidelity) over parts are returned. The classifier
need not be Inception: with the domain network's softmax this is the "domain IS".
It ranges from 1 (every sample gets the same prediction) to K (confident predictions spread
evenly over K classes). Computed in float64; 0 · log 0 counts as 0.
"""
from __future__ import annotations

import numpy as np

from ..errors import GanforgeError


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """probs: (N, K) class probabilities (rows sum to 1) -> (mean, std) over ``splits`` parts."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise GanforgeError(f"the Inception Score needs class probabilities of shape (N, K), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or np.abs(p.sum(axis=1) - 1).max() > 1e-3:
        raise GanforgeError(
            "the Inception Score needs class probabilities (non-negative rows summing to 1), not logits"
        )
    n = len(p)
    if not 1 <= splits <= n:
        raise GanforgeError(f"the Inception Score needs 1 <= splits <= N = {n}, got splits={splits}")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(p > 0, np.log(p), 0.0)
    scores = np.empty(splits)
    for i in range(splits):
        part, log_part = p[i * n // splits : (i + 1) * n // splits], log_p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0)
        with np.errstate(divide="ignore"):
            log_marginal = np.where(marginal > 0, np.log(marginal), 0.0)
        kl = (part * (log_part - log_marginal)).sum(axis=1).mean()
        scores[i] = np.exp(kl)
    return float(scores.mean()), float(scores.std())
