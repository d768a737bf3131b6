"""Kernel Inception Distance: hand-computed values, unbiasedness, agreement with torchmetrics and with
torch-fidelity (recorded by tests/metrics/references/record.py)."""
from __future__ import annotations

import numpy as np
import pytest

from ganforge.errors import GanforgeError
from ganforge.metrics.kid import kernel_inception_distance, mmd2_unbiased
from helpers import recorded_reference


def reference_mmd2(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> float:
    """The KID paper's unbiased estimator written out term by term (slow, independent)."""
    m, d = x.shape
    g = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (g * float(np.dot(a, b)) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_hand_computed_tiny_case():
    # k(x, y) = (x·y / 2 + 1)^3. Within each set the dot products are 0 -> k = 1, so both
    # within-set terms are 1; across, two pairs have x·y = 1 (k = 3.375) and two have 0 (k = 1):
    # 2 * (2 * 3.375 + 2) / 4 = 4.375. MMD² = 1 + 1 - 4.375 = -2.375.
    real = np.array([[1.0, 0.0], [0.0, 1.0]])
    fake = np.array([[1.0, 1.0], [0.0, 0.0]])
    mean, std = kernel_inception_distance(real, fake, subsets=1, subset_size=2)
    assert mean == pytest.approx(-2.375, abs=1e-12)
    assert std == 0.0
    # Every subset of the full size is a permutation: same value each time, zero spread.
    mean, std = kernel_inception_distance(real, fake, subsets=7, subset_size=1000)
    assert mean == pytest.approx(-2.375, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("degree,gamma,coef0", [(3, None, 1.0), (2, 0.3, 0.5), (1, 1.0, 0.0)])
def test_matches_termwise_reference(degree, gamma, coef0):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 6)), rng.standard_normal((30, 6)) + 0.4
    ref = reference_mmd2(x, y, degree, gamma, coef0)
    assert mmd2_unbiased(x, y, degree, gamma, coef0) == pytest.approx(ref, rel=1e-12)


def test_same_distribution_near_zero_and_shift_detected():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((500, 64)), rng.standard_normal((500, 64))
    same_mean, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted_mean, _ = kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same_mean) < 0.01
    assert same_std > 0
    assert shifted_mean > 0.2 > 20 * abs(same_mean)


def test_unbiased_estimate_averages_to_zero():
    # Over many independent pairs of small samples of one distribution, the unbiased estimate
    # averages to 0 (it is often negative); the biased V-statistic stays clearly positive.
    rng = np.random.default_rng(3)
    values, biased = [], []
    for _ in range(300):
        x, y = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
        values.append(mmd2_unbiased(x, y))
        kxx, kyy, kxy = ((p @ q.T / 4 + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    values = np.array(values)
    sem = values.std() / np.sqrt(len(values))
    assert abs(values.mean()) < 3 * sem
    assert min(values) < 0
    assert np.mean(biased) > 10 * sem


def test_subset_size_capped_and_seeded():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((50, 8)), rng.standard_normal((80, 8))
    assert kernel_inception_distance(x, y, subsets=5, seed=1) == kernel_inception_distance(x, y, subsets=5, seed=1)
    assert kernel_inception_distance(x, y, subsets=5, seed=1) != kernel_inception_distance(x, y, subsets=5, seed=2)
    # subset_size 1000 is capped at 50, the smaller set: all of x in every subset.
    assert kernel_inception_distance(x, y, subsets=3, subset_size=1000) == kernel_inception_distance(
        x, y, subsets=3, subset_size=50)


def test_subsets_drawn_like_torch_fidelity():
    # np.random.RandomState(seed).choice without replacement, the real subset first, then the fake one.
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((60, 5)), rng.standard_normal((70, 5))
    draw = np.random.RandomState(11)
    values = []
    for _ in range(4):
        xs = x[draw.choice(60, 25, replace=False)]
        values.append(mmd2_unbiased(xs, y[draw.choice(70, 25, replace=False)]))
    mean, std = kernel_inception_distance(x, y, subsets=4, subset_size=25, seed=11)
    assert mean == pytest.approx(np.mean(values), rel=1e-12) and std == pytest.approx(np.std(values), rel=1e-9)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(GanforgeError, match="D"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(GanforgeError):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(GanforgeError):
        kernel_inception_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_agrees_with_torchmetrics_helpers():
    kid = pytest.importorskip("torchmetrics.image.kid")
    import torch

    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((500, 64)), rng.standard_normal((400, 64)) * 1.2 + 0.1
    # The whole sets (one subset of the full size is the set itself, in some order).
    ours, _ = kernel_inception_distance(real[:400], fake, subsets=1, subset_size=400)
    theirs = kid.poly_mmd(torch.from_numpy(real[:400]), torch.from_numpy(fake)).item()
    assert ours == pytest.approx(theirs, rel=1e-9)
    # Random subsets, with non-default kernel parameters.
    for seed in range(3):
        r = np.random.default_rng(seed)
        xs, ys = real[r.choice(500, 100, replace=False)], fake[r.choice(400, 100, replace=False)]
        theirs = kid.poly_mmd(torch.from_numpy(xs), torch.from_numpy(ys), degree=2, gamma=0.05, coef=0.5).item()
        assert mmd2_unbiased(xs, ys, degree=2, gamma=0.05, coef0=0.5) == pytest.approx(theirs, rel=1e-9)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_agrees_with_torchmetrics_metric_class():
    kid = pytest.importorskip("torchmetrics.image.kid")
    import torch

    class Identity(torch.nn.Module):  # the features are given directly
        def forward(self, x):
            return x

    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((300, 32)), rng.standard_normal((300, 32)) + 0.2
    metric = kid.KernelInceptionDistance(feature=Identity(), subsets=3, subset_size=300)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    theirs_mean, theirs_std = (v.item() for v in metric.compute())
    ours_mean, ours_std = kernel_inception_distance(real, fake, subsets=3, subset_size=300)
    assert ours_mean == pytest.approx(theirs_mean, rel=1e-9)
    assert ours_std == pytest.approx(theirs_std, abs=1e-9)


def torch_fidelity_case():
    """Feature sets compared with torch-fidelity (tests/metrics/references/record.py imports this)."""
    rng = np.random.default_rng(8)
    return rng.standard_normal((1200, 64)), rng.standard_normal((1100, 64)) * 1.1 + 0.05


def test_agrees_with_torch_fidelity():
    """torch_fidelity.metric_kid.kid_features_to_metric (10 subsets of 1000, seed 2020) on the same features, as
    recorded."""
    theirs_mean, theirs_std = recorded_reference("kid")
    real, fake = torch_fidelity_case()
    mean, std = kernel_inception_distance(real, fake, subsets=10, subset_size=1000, seed=2020)
    assert mean == pytest.approx(theirs_mean, rel=1e-6)
    assert std == pytest.approx(theirs_std, rel=1e-4)
