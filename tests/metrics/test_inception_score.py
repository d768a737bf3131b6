"""Inception Score from class probabilities: known values, agreement with torchmetrics and with torch-fidelity
(recorded by tests/metrics/references/record.py)."""
from __future__ import annotations

import numpy as np
import pytest

from ganforge.errors import GanforgeError
from ganforge.metrics.inception_score import inception_score
from helpers import recorded_reference


def reference_is(probs: np.ndarray, splits: int) -> tuple[float, float]:
    """Term-by-term IS: contiguous parts at i*N//splits, mean and population std of exp(mean KL)."""
    n, scores = len(probs), []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        py = part.mean(axis=0)
        kls = [sum(p[c] * np.log(p[c] / py[c]) for c in range(len(p)) if p[c] > 0) for p in part]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_confident_and_uniform_over_k_classes_gives_k():
    probs = np.tile(np.eye(7), (100, 1))  # each part of 70 holds 10 confident samples per class
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(7.0, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_identical_predictions_give_one():
    p = np.array([0.2, 0.5, 0.3])
    mean, std = inception_score(np.tile(p, (50, 1)), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    mean, _ = inception_score(np.tile(np.eye(4)[2], (40, 1)), splits=4)  # all confident, one class
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_hand_computed_two_samples():
    # p(y) = (0.75, 0.25); KL1 = ln(4/3), KL2 = 0.5 ln(2/3) + 0.5 ln 2 = 0.5 ln(4/3).
    # IS = exp(0.75 ln(4/3)) = (4/3)^0.75.
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    mean, std = inception_score(probs, splits=1)
    assert mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)
    assert std == 0.0


@pytest.mark.parametrize("n,splits", [(1000, 10), (997, 10), (25, 3)])
def test_matches_termwise_reference(n, splits):
    probs = np.random.default_rng(n).dirichlet(np.full(6, 0.4), size=n)
    ours = inception_score(probs, splits=splits)
    ref = reference_is(probs, splits)
    assert ours[0] == pytest.approx(ref[0], rel=1e-12)
    assert ours[1] == pytest.approx(ref[1], rel=1e-9, abs=1e-12)


def test_rejects_logits_and_bad_splits():
    with pytest.raises(GanforgeError, match="probabilities"):
        inception_score(np.random.default_rng(0).standard_normal((20, 4)))
    with pytest.raises(GanforgeError, match="splits"):
        inception_score(np.full((5, 2), 0.5), splits=10)


@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save")
def test_agrees_with_torchmetrics():
    inception = pytest.importorskip("torchmetrics.image.inception")
    import torch

    class Logits(torch.nn.Module):  # the class log-probabilities are given directly
        def forward(self, x):
            return x

    probs = np.random.default_rng(7).dirichlet(np.full(10, 0.3), size=1000)
    metric = inception.InceptionScore(feature=Logits(), splits=10)
    metric.update(torch.from_numpy(np.log(probs)))
    # torchmetrics shuffles the samples with torch.randperm before splitting: replay its order.
    torch.manual_seed(123)
    order = torch.randperm(len(probs)).numpy()
    torch.manual_seed(123)
    theirs_mean, theirs_std = (v.item() for v in metric.compute())
    ours_mean, ours_std = inception_score(probs[order], splits=10)
    assert ours_mean == pytest.approx(theirs_mean, rel=1e-9)
    # torchmetrics reports the sample (ddof=1) standard deviation over splits; we report ddof=0.
    assert ours_std * np.sqrt(10 / 9) == pytest.approx(theirs_std, rel=1e-9)


def torch_fidelity_case():
    """Class probabilities scored by torch-fidelity (tests/metrics/references/record.py imports this)."""
    return np.random.default_rng(9).dirichlet(np.full(10, 0.3), size=1003)


def test_agrees_with_torch_fidelity():
    """torch_fidelity.metric_isc.isc_features_to_metric (10 splits, unshuffled) on the same probabilities, as recorded."""
    theirs_mean, theirs_std = recorded_reference("inception_score")
    mean, std = inception_score(torch_fidelity_case(), splits=10)
    assert mean == pytest.approx(theirs_mean, rel=1e-9)
    assert std == pytest.approx(theirs_std, rel=1e-6)
