"""Stacked MNIST construction."""
import numpy as np
import pytest

from ganforge.data.stacked import stack_digits
from ganforge.errors import GanforgeError


def _digits():
    labels = np.arange(20) % 10
    images = (labels[:, None, None] * 20 + np.zeros((20, 6, 6))).astype(np.uint8)  # digit k painted 20k
    return images, labels


def test_channels_hold_the_digits_named_by_the_mode():
    images, labels = _digits()
    stacked, modes = stack_digits(images, labels, 500, seed=3)
    assert stacked.shape == (500, 6, 6, 3) and stacked.dtype == np.uint8
    red, green, blue = (stacked[:, 0, 0, c].astype(np.int64) // 20 for c in range(3))
    np.testing.assert_array_equal(modes, 100 * red + 10 * green + blue)
    assert len(np.unique(modes)) > 300  # channels drawn independently: many of the 1,000 modes appear


def test_same_seed_same_images():
    images, labels = _digits()
    a, _ = stack_digits(images, labels, 50, seed=1)
    b, _ = stack_digits(images, labels, 50, seed=1)
    c, _ = stack_digits(images, labels, 50, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_input_is_refused():
    images, labels = _digits()
    with pytest.raises(GanforgeError):
        stack_digits(images.astype(np.float32), labels, 5)
    with pytest.raises(GanforgeError):
        stack_digits(images, labels + 5, 5)
