"""The 2-D Gaussian mixtures ring8 and grid25."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ganforge.data.mixtures import MIXTURES, Mixture, grid25, ring8


def test_ring8_layout():
    mix = ring8(4000)
    assert isinstance(mix, Mixture)
    assert mix.points.shape == (4000, 2) and mix.points.dtype == np.float32
    assert mix.labels.shape == (4000,) and mix.labels.dtype == np.int64
    assert mix.centers.shape == (8, 2) and mix.std == 0.02
    np.testing.assert_allclose(np.linalg.norm(mix.centers, axis=1), 2.0)
    angles = np.sort(np.mod(np.arctan2(mix.centers[:, 1], mix.centers[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)


def test_grid25_layout():
    mix = grid25(4000)
    assert mix.centers.shape == (25, 2) and mix.std == 0.05
    expected = set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert {tuple(c) for c in mix.centers} == expected


@pytest.mark.parametrize("make", [ring8, grid25])
def test_samples_follow_their_components(make):
    mix = make(20000, seed=1)
    offsets = mix.points - mix.centers[mix.labels]
    assert offsets.std(axis=0) == pytest.approx([mix.std, mix.std], rel=0.03)
    assert np.abs(offsets.mean(axis=0)).max() < 0.1 * mix.std
    counts = np.bincount(mix.labels, minlength=len(mix.centers))
    assert counts.min() > 0.8 * len(mix.points) / len(mix.centers)  # components picked uniformly
    # Each sample's nearest centre is its own component.
    nearest = np.linalg.norm(mix.points[:, None] - mix.centers[None], axis=2).argmin(axis=1)
    assert (nearest == mix.labels).all()


def test_seeded_and_registered():
    assert np.array_equal(ring8(100, seed=3).points, ring8(100, seed=3).points)
    assert not np.array_equal(ring8(100, seed=3).points, ring8(100, seed=4).points)
    assert MIXTURES == {"ring8": ring8, "grid25": grid25}
    assert grid25(0).points.shape == (0, 2)
