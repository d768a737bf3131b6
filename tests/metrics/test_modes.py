"""Class coverage and Gaussian-mixture mode coverage."""
from __future__ import annotations

import numpy as np
import pytest

from ganforge.data.mixtures import grid25, ring8
from ganforge.errors import GanforgeError
from ganforge.metrics.modes import class_coverage, classifier_confusion, mixture_modes


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


def _leaky_rates(k=10):
    """A 91%-accurate classifier: 3% of each class goes to each neighbour, 3% over the rest."""
    rates = np.full((k, k), 0.03 / (k - 3))
    for c in range(k):
        rates[c, c] = 0.91
        rates[c, (c - 1) % k] = rates[c, (c + 1) % k] = 0.03
    return rates


def _classify(true_classes, rates, rng):
    """Predicted classes of samples of the given true classes through the confusion rates."""
    cum = rates.cumsum(axis=1)
    return np.minimum((rng.random(len(true_classes))[:, None] > cum[true_classes]).sum(axis=1), len(rates) - 1)


def test_classifier_confusion_counts_true_by_predicted():
    labels = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 2, 2])
    expected = [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    hard = classifier_confusion(pred, labels)
    assert not hard.soft
    np.testing.assert_array_equal(hard.counts, expected)
    np.testing.assert_array_equal(hard.squares, expected)
    probs = _one_hot_probs(pred, 4)
    np.testing.assert_array_equal(classifier_confusion(probs, labels).counts, np.pad(expected, (0, 1)))
    soft = classifier_confusion(probs, labels, soft=True)
    assert soft.soft and soft.counts.sum(axis=1) == pytest.approx([2, 3, 1, 0])
    assert soft.counts[1, 1] == pytest.approx(2 * 0.99 + 0.01 / 3)
    assert soft.squares[1, 1] == pytest.approx(2 * 0.99**2 + (0.01 / 3) ** 2)
    with pytest.raises(GanforgeError):
        classifier_confusion(pred, labels[:-1])
    with pytest.raises(GanforgeError, match="probabilities"):
        classifier_confusion(pred, labels, soft=True)


def test_confusion_correction_reads_one_class_as_one():
    rng = np.random.default_rng(0)
    rates = _leaky_rates()
    confusion = rates * 1000  # counts: 1,000 labelled images per class
    real = np.arange(1000) % 10
    pred = _classify(np.full(5000, 3), rates, rng)  # a one-class set, seen through the classifier
    out = class_coverage(pred, real, confusion=confusion)
    assert out["classes_covered_raw"] == 3  # the neighbours' 3% each pass the 1% threshold
    assert out["classes_covered"] == 1 and out["missing"] == [c for c in range(10) if c != 3]
    assert out["corrected"] and out["histogram"][3] > 0.98
    assert out["raw_histogram"][2] == pytest.approx(0.03, abs=0.01)
    assert out["kl"] == pytest.approx(np.log(10), abs=0.05)  # one class of ten, once corrected


def test_confusion_correction_keeps_balanced_and_rare_classes():
    rng = np.random.default_rng(1)
    rates = _leaky_rates()
    real = np.arange(1000) % 10
    balanced = class_coverage(_classify(np.arange(5000) % 10, rates, rng), real, confusion=rates * 1000)
    assert balanced["classes_covered"] == balanced["classes_covered_raw"] == 10
    assert balanced["histogram"] == pytest.approx([0.1] * 10, abs=0.02) and balanced["kl"] < 0.01
    # Class 3 at 2% of the samples (threshold 1%): a rare but real class still counts.
    shares = np.full(10, 0.98 / 9)
    shares[3] = 0.02
    rare = class_coverage(_classify(rng.choice(10, 5000, p=shares), rates, rng), real, confusion=rates * 1000)
    assert rare["classes_covered"] == 10 and rare["histogram"][3] == pytest.approx(0.02, abs=0.008)


def test_confusion_correction_still_reports_a_missing_class():
    rng = np.random.default_rng(2)
    rates = _leaky_rates()
    nine = np.array([c for c in range(10) if c != 3])
    pred = _classify(rng.choice(nine, 5000), rates, rng)
    out = class_coverage(pred, np.arange(1000) % 10, confusion=rates * 1000)
    assert out["raw_histogram"][3] > 0.005  # its neighbours leak into it
    assert out["classes_covered"] == 9 and out["missing"] == [3] and out["histogram"][3] < 0.005
    # Only the classifier's own confusion is explained away: a class missing under a perfect
    # classifier's eyes is missing with or without the correction.
    exact = class_coverage(nine.repeat(50), np.arange(1000) % 10, confusion=np.eye(10) * 1e6)
    assert exact["missing"] == [3] and exact["classes_covered"] == exact["classes_covered_raw"] == 9


def test_soft_confusion_uses_mean_probabilities():
    # Classes 0 and 1 look alike: 30% of each class's images read as the other, but their
    # probabilities still lean the right way (0.55 against 0.45); class 2 is never confused.
    rng = np.random.default_rng(3)

    def probs(true):
        lean = np.where(rng.random(len(true)) < 0.7, 0.8, 0.45)  # probability of the true class
        out = np.zeros((len(true), 3))
        out[np.arange(len(true)), true] = np.where(true == 2, 1.0, lean)
        other = np.where(true == 0, 1, 0)
        out[np.arange(len(true)), other] += np.where(true == 2, 0.0, 1 - lean)
        return out

    labels = np.arange(3000) % 3
    soft = classifier_confusion(probs(labels), labels, soft=True)
    assert soft.soft and soft.counts[0] == pytest.approx([1000 * (0.7 * 0.8 + 0.3 * 0.45), 1000 * (0.7 * 0.2 + 0.3 * 0.55), 0], rel=0.05)
    one = class_coverage(probs(np.zeros(2000, int)), labels, confusion=soft)
    assert one["classes_covered_raw"] == 2 and one["classes_covered"] == 1 and one["missing"] == [1, 2]
    both = class_coverage(probs(np.arange(2000) % 2), labels, confusion=soft)
    assert both["classes_covered"] == 2 and both["missing"] == [2]
    assert both["histogram"] == pytest.approx([0.5, 0.5, 0.0], abs=0.05)
    with pytest.raises(GanforgeError, match="probabilities"):
        class_coverage(np.zeros(10, int), labels, confusion=soft)


def test_confusion_correction_needs_a_row_per_real_class():
    with pytest.raises(GanforgeError, match="no labelled images of classes \\[2\\]"):
        class_coverage(np.array([0, 1]), np.arange(30) % 3, confusion=np.diag([10, 10, 0]))
    with pytest.raises(GanforgeError, match="square"):
        class_coverage(np.array([0, 1]), np.arange(30) % 3, confusion=np.ones((3, 2)))


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
