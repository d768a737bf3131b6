"""Fréchet distance: agreement with the sqrtm formula and with pytorch-fid (recorded), known values."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from ganforge.metrics.frechet import GaussianStats, frechet_distance
from helpers import recorded_reference


def sqrtm_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The usual formula with a matrix square root: |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _features(seed=0, n=500, d=64):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    a = rng.standard_normal((n, d)) @ mixing
    b = (rng.standard_normal((n, d)) * 1.2 + 0.3) @ mixing
    return a, b


def test_agrees_with_sqrtm_formula():
    a, b = _features()
    sa, sb = GaussianStats.of(a), GaussianStats.of(b)
    ours = frechet_distance(sa, sb)
    ref = sqrtm_frechet(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert ours > 1
    assert ours == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(sb, sa) == pytest.approx(ours, rel=1e-9)  # symmetric


def pytorch_fid_case():
    """The two feature sets compared with pytorch-fid (tests/metrics/references/record.py imports this)."""
    return _features(seed=1)


def test_agrees_with_pytorch_fid():
    """pytorch_fid.fid_score.calculate_frechet_distance on the same statistics, as recorded."""
    sa, sb = (GaussianStats.of(x) for x in pytorch_fid_case())
    assert frechet_distance(sa, sb) == pytest.approx(recorded_reference("frechet_distance"), rel=1e-6)


def test_same_set_is_zero_and_mean_shift_adds_its_squared_norm():
    a, _ = _features(seed=2)
    sa = GaussianStats.of(a)
    scale = np.trace(sa.sigma)
    assert abs(frechet_distance(sa, sa)) < 1e-9 * scale
    shift = np.random.default_rng(3).standard_normal(a.shape[1]) * 0.7
    shifted = GaussianStats.of(a + shift)  # same covariance, mean moved by `shift`
    assert frechet_distance(sa, shifted) == pytest.approx(shift @ shift, rel=1e-9, abs=1e-9 * scale)


def test_two_gaussians_with_known_distance():
    # Diagonal covariances: FD = |mu1 - mu2|² + sum (s1 - s2)² over the standard deviations.
    rng = np.random.default_rng(4)
    d = 8
    s1, s2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    g1 = GaussianStats(mu=np.zeros(d), sigma=np.diag(s1**2), count=0)
    g2 = GaussianStats(mu=np.ones(d), sigma=np.diag(s2**2), count=0)
    assert frechet_distance(g1, g2) == pytest.approx(d + np.sum((s1 - s2) ** 2), rel=1e-12)
