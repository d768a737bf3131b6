"""Class coverage and Gaussian-mixture mode coverage."""
from __future__ import annotations

import numpy as np
import pytest

from ganforge.data.mixtures import grid25, ring8
from ganforge.errors import GanforgeError
from ganforge.metrics.modes import class_coverage, mixture_modes


def _one_hot_probs(pred, k):
    probs = np.full((len(pred), k), 0.01 / (k - 1))
    probs[np.arange(len(pred)), pred] = 0.99
    return probs


def test_balanced_generator_covers_every_class():
    real_labels = np.arange(1000) % 10
    out = class_coverage(_one_hot_probs(np.arange(500) % 10, 10), real_labels)
    assert out["classes_covered"] == 10 and out["classes_total"] == 10 and out["missing"] == []
    assert out["kl"] == pytest.approx(0.0, abs=1e-9)
    assert out["histogram"] == pytest.approx([0.1] * 10)


def test_missing_class_is_flagged():
    pred = np.arange(900) % 10
    pred[pred == 3] = 4  # class 3 never generated
    out = class_coverage(_one_hot_probs(pred, 10), np.arange(1000) % 10)
    assert out["missing"] == [3] and out["classes_covered"] == 9
    assert out["histogram"][3] == 0.0 and out["kl"] > 0.05
    # Uniform over the 9 other classes: KL(generated || real) = ln(10/9).
    nine = np.array([c for c in range(10) if c != 3] * 100)
    assert class_coverage(nine, np.arange(1000) % 10)["kl"] == pytest.approx(np.log(10 / 9), rel=1e-4)


def test_min_share_threshold():
    # Class 0 gets 0.5% of the samples for an expected 10%: below 10% of its share, above 1%.
    pred = np.concatenate([np.zeros(5, int), 1 + np.arange(995) % 9])
    real = np.arange(1000) % 10
    assert class_coverage(pred, real)["missing"] == [0]
    assert class_coverage(pred, real, min_share=0.01)["missing"] == []


def test_histogram_and_labels_agree_and_kl_by_hand():
    pred = np.array([0, 1] * 50)  # generated shares (0.5, 0.5)
    hist = np.array([25.0, 75.0])  # real shares (0.25, 0.75)
    by_hist = class_coverage(pred, hist)
    by_labels = class_coverage(pred, np.array([0] * 25 + [1] * 75))
    by_int_hist = class_coverage(pred, np.array([25, 75]), real_is_histogram=True)
    assert by_hist == by_labels == by_int_hist
    # KL(generated || real) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
    assert by_hist["kl"] == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2 / 3), rel=1e-5)


def test_kl_finite_when_generator_makes_a_class_real_data_lacks():
    out = class_coverage(np.array([0, 1, 2, 2]), np.array([0.5, 0.5, 0.0]))
    assert np.isfinite(out["kl"]) and out["kl"] > 1
    assert out["classes_total"] == 2 and out["missing"] == []


def test_class_coverage_errors():
    with pytest.raises(GanforgeError):
        class_coverage(np.array([0.2, 0.8]), np.arange(10))  # 1-D floats are not predictions
    with pytest.raises(GanforgeError):
        class_coverage(np.array([0, 1]), np.array([-1, 0]))


def test_ring8_samples_cover_all_modes():
    mix = ring8(2500, seed=1)
    out = mixture_modes(mix.points, mix.centers, mix.std)
    assert out["modes_covered"] == 8 and out["modes_total"] == 8
    # 2-D Gaussian: P(r < 3 std) = 1 - exp(-4.5) = 0.989
    assert out["high_quality_share"] == pytest.approx(1 - np.exp(-4.5), abs=0.01)
    assert sum(out["per_mode_counts"]) == round(out["high_quality_share"] * 2500)


def test_collapsed_samples_cover_one_mode():
    mix = ring8(2500, seed=2)
    one = mix.points[mix.labels == 5]
    out = mixture_modes(one, mix.centers, mix.std)
    assert out["modes_covered"] == 1 and out["per_mode_counts"][5] > 0.95 * len(one)
    assert [c for i, c in enumerate(out["per_mode_counts"]) if i != 5] == [0] * 7


def test_quality_and_min_count():
    centers = np.array([[0.0, 0.0], [10.0, 0.0]])
    pts = np.array([[0.0, 0.0], [0.29, 0.0], [0.31, 0.0], [5.0, 0.0], [10.0, 0.0], [np.nan, 1.0]])
    out = mixture_modes(pts, centers, std=0.1)  # within 3 std = 0.3
    assert out["per_mode_counts"] == [2, 1] and out["high_quality_share"] == pytest.approx(3 / 6)
    assert mixture_modes(pts, centers, std=0.1, min_count=2)["modes_covered"] == 1


def test_grid25_blurred_samples_lose_quality_not_modes():
    mix = grid25(2500, seed=3)
    out = mixture_modes(mix.points, mix.centers, mix.std)
    assert out["modes_covered"] == 25 and out["high_quality_share"] > 0.97
    blurred = mix.points + np.random.default_rng(0).normal(0, 0.5, mix.points.shape)
    out = mixture_modes(blurred, mix.centers, mix.std)
    assert out["high_quality_share"] < 0.1


def test_stacked_modes_counts_codes_and_kl():
    from ganforge.metrics.modes import stacked_modes

    all_modes = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    full = stacked_modes(all_modes)
    assert full["modes_covered"] == 1000 and full["kl"] == pytest.approx(0.0, abs=1e-12)
    one = stacked_modes(np.array([[1, 2, 3]] * 50))
    assert one["modes_covered"] == 1 and one["kl"] == pytest.approx(np.log(1000))
    half = stacked_modes(all_modes[:500])
    assert half["modes_covered"] == 500 and half["kl"] == pytest.approx(np.log(2))
    with pytest.raises(GanforgeError):
        stacked_modes(np.array([[1, 2, 10]]))


def test_channel_digits_classifies_each_channel_alone():
    import torch

    from ganforge.metrics.domain import train_domain_net
    from ganforge.metrics.modes import channel_digits

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    images = (labels[:, None, None, None] * 120 + torch.randint(0, 8, (300, 1, 8, 8), generator=gen)).to(torch.uint8)
    net = train_domain_net(images, labels, epochs=15, progress=False)
    stacked = torch.cat([images[:30], images[1:31], images[2:32]], dim=1)  # (30, 3, 8, 8)
    expected = torch.stack([labels[:30], labels[1:31], labels[2:32]], dim=1).numpy()
    np.testing.assert_array_equal(channel_digits(net, stacked), expected)
