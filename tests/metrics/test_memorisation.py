"""Memorisation: copies of training samples are flagged, fresh samples are not."""
from __future__ import annotations

import numpy as np
import pytest

from ganforge.errors import GanforgeError
from ganforge.metrics.memorisation import memorisation, nearest_distances


def _sets(d=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((600, d)), rng.standard_normal((500, d)), rng.standard_normal((500, d))


def test_nearest_distances_brute_force():
    rng = np.random.default_rng(1)
    q, r = rng.standard_normal((40, 5)), rng.standard_normal((70, 5))
    brute = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(nearest_distances(q, r), brute, rtol=1e-12)


def test_fresh_samples_look_like_heldout():
    train, heldout, fresh = _sets()
    out = memorisation(train, fresh, heldout)
    assert out["heldout_near_copy_share"] == pytest.approx(0.01, abs=0.003)  # ~1% by construction
    assert out["near_copy_share"] < 0.04
    assert 0.9 < out["median_ratio"] < 1.1


def test_copies_of_training_samples_are_all_near_copies():
    train, heldout, _ = _sets()
    copies = train[np.random.default_rng(2).integers(0, len(train), 300)]
    out = memorisation(train, copies, heldout)
    assert out["near_copy_share"] == 1.0
    assert out["fake_to_train_median"] == 0.0 and out["median_ratio"] == 0.0
    # Slightly perturbed copies still count; half copies, half fresh -> about half.
    noisy = copies + 0.01 * np.random.default_rng(3).standard_normal(copies.shape)
    assert memorisation(train, noisy, heldout)["near_copy_share"] == 1.0
    mixed = np.concatenate([copies[:150], _sets(seed=9)[2][:150]])
    assert memorisation(train, mixed, heldout)["near_copy_share"] == pytest.approx(0.5, abs=0.03)


def test_flattened_uint8_pixels_exact_copies_have_distance_zero():
    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, (300, 3, 8, 8), dtype=np.uint8)
    heldout = rng.integers(0, 256, (200, 3, 8, 8), dtype=np.uint8)
    out = memorisation(train, train[:100], heldout)
    assert out["near_copy_share"] == 1.0 and out["fake_to_train_median"] == 0.0
    fresh = rng.integers(0, 256, (200, 3, 8, 8), dtype=np.uint8)
    assert memorisation(train, fresh, heldout)["near_copy_share"] < 0.05


def test_bad_inputs():
    train, heldout, fresh = _sets()
    with pytest.raises(GanforgeError, match="values"):
        memorisation(train, fresh[:, :5], heldout)
    with pytest.raises(GanforgeError, match="held-out"):
        memorisation(train, fresh, train[:100])  # the "held-out" set is the training set
    with pytest.raises(GanforgeError, match="copy_quantile"):
        memorisation(train, fresh, heldout, copy_quantile=1.5)
