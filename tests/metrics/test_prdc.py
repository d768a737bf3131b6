"""Precision, recall, density and coverage: hand-computed values, properties, and the prdc package."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from ganforge.errors import GanforgeError
from ganforge.metrics import prdc as prdc_module
from ganforge.metrics.prdc import density_coverage, precision_recall, prdc


def test_hand_computed_one_dimensional_case():
    # real 0, 1, 2, 3 with k = 1: every real radius is 1. fake 0.5 and 10: fake radii are 9.5.
    # precision: 0.5 is within 1 of real 0 and 1, 10 is in no ball -> 1/2.
    # recall: every real point is within 9.5 of fake 0.5 -> 1.
    # density: 0.5 lies in 2 real balls (0 and 1), 10 in none -> (2 + 0) / 2 / k = 1.
    # coverage: the balls of real 0 and 1 hold a fake point (0.5 away), those of 2 and 3 don't -> 1/2.
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    assert prdc(real, fake, nearest_k=1) == {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5}


def test_identical_sets_score_one_and_far_sets_zero():
    x = np.random.default_rng(0).standard_normal((300, 16))
    same = prdc(x, x.copy(), nearest_k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] > 0.9
    far = prdc(x, x + 100.0, nearest_k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_collapsed_generator_has_precision_but_no_recall():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 8))
    fake = real[:5][rng.integers(0, 5, 400)] + 0.01 * rng.standard_normal((400, 8))  # 5 modes only
    out = prdc(real, fake, nearest_k=5)
    assert out["precision"] > 0.9
    assert out["recall"] < 0.05 and out["coverage"] < 0.2


def test_blocked_computation_matches_one_block(monkeypatch):
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((257, 12)), rng.standard_normal((190, 12)) * 1.3
    blocks = []
    original = prdc_module.distance_blocks

    def recorded(x, y, same=False):
        for rows, d in original(x, y, same):
            blocks.append(d.shape)
            yield rows, d

    monkeypatch.setattr(prdc_module, "distance_blocks", recorded)
    whole = prdc(real, fake, nearest_k=4)
    assert len(blocks) == 3  # real radii, fake radii, real x fake: one block each
    blocks.clear()
    monkeypatch.setattr(prdc_module, "_BLOCK_BYTES", 8 * 300 * 7)  # 8 rows of 257 distances, 11 of 190
    assert prdc(real, fake, nearest_k=4) == whole
    # the limit really split the work: real x real in blocks of 8 rows (33 blocks), fake x fake and
    # real x fake in blocks of 11 (18 + 24), every row of each matrix once
    assert len(blocks) == 33 + 18 + 24
    assert all(rows <= (8 if cols == 257 else 11) for rows, cols in blocks)
    assert sum(rows for rows, cols in blocks if cols == 257) == 257
    assert sum(rows for rows, cols in blocks if cols == 190) == 190 + 257


def test_wrappers_and_errors():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((100, 4)), rng.standard_normal((120, 4))
    at3, at5 = prdc(real, fake, 3), prdc(real, fake, 5)
    assert precision_recall(real, fake) == {"precision": at3["precision"], "recall": at3["recall"]}
    assert density_coverage(real, fake) == {"density": at5["density"], "coverage": at5["coverage"]}
    with pytest.raises(GanforgeError):
        prdc(real, fake[:, :3], 3)
    with pytest.raises(GanforgeError, match="k"):
        prdc(real[:3], fake, 5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [3, 5])
def test_equals_prdc_package(dtype, k):
    reference = pytest.importorskip("prdc")
    rng = np.random.default_rng(k)
    real = rng.standard_normal((500, 64)).astype(dtype)
    fake = (rng.standard_normal((450, 64)) * 1.1 + 0.15).astype(dtype)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints the set sizes
        theirs = reference.compute_prdc(real, fake, nearest_k=k)
        theirs_same = reference.compute_prdc(real, real, nearest_k=k)
    ours = prdc(real, fake, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(theirs[name]), abs=1e-12), name
    ours_same = prdc(real, real, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours_same[name] == pytest.approx(float(theirs_same[name]), abs=1e-12), name
