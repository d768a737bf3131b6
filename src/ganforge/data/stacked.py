"""Stacked MNIST: three digits stacked as the red, green and blue channels of one image.

The standard mode-collapse test for image GANs (VEEGAN, PacGAN, R3GAN): with ten digits per
channel there are 1,000 modes (red digit x 100 + green digit x 10 + blue digit). A generator's
modes are counted by classifying each channel with an MNIST classifier
(:func:`ganforge.metrics.modes.stacked_modes`).
"""
from __future__ import annotations

import numpy as np

from ..errors import GanforgeError

MODES = 1000
PLACE_VALUES = np.array([100, 10, 1])  # a mode's code from the (red, green, blue) digits


def mode_codes(digits: np.ndarray) -> np.ndarray:
    """(N, 3) digits 0..9 of the red, green and blue channels -> (N,) int64 modes 0..999."""
    return np.asarray(digits).astype(np.int64) @ PLACE_VALUES


def stack_digits(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of three digits drawn independently (uniformly over the given digits).

    images: (N, H, W) uint8 grayscale digits; labels: (N,) their digits 0..9.
    Returns ((n, H, W, 3) uint8, (n,) int64 mode = 100 * red + 10 * green + blue).
    """
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels) or len(images) == 0:
        raise GanforgeError(
            f"stacking needs uint8 digits (N, H, W) with N labels, got {images.dtype} {images.shape} "
            f"and {labels.shape} labels"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise GanforgeError("stacking needs digit labels 0..9")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(images), (n, 3))  # (n, 3) one digit image per channel
    stacked = np.stack([images[picks[:, c]] for c in range(3)], axis=-1)  # (n, H, W, 3)
    digits = labels[picks]  # (n, 3)
    return stacked, mode_codes(digits)
