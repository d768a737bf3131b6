"""Classification Accuracy Score: a classifier trained on generated images, tested on real ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.metrics.cas import classification_accuracy_score


def _images(n: int, seed: int):
    """Two classes that differ in brightness: class 0 in [0, 80), class 1 in [150, 230)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = (rng.random((n, 1, 16, 16)) * 80 + labels[:, None, None, None] * 150).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels)


def test_faithful_generator_scores_high_and_label_swapping_one_scores_zero():
    gen, gen_labels = _images(512, seed=0)
    test, test_labels = _images(100, seed=1)
    assert classification_accuracy_score(gen, gen_labels, test, test_labels, epochs=3) >= 0.9
    # A generator that draws class 1 when asked for class 0 (and vice versa) teaches the wrong mapping.
    assert classification_accuracy_score(gen, 1 - gen_labels, test.numpy(), test_labels.numpy(), epochs=3) <= 0.1


def test_bad_inputs():
    gen, labels = _images(8, seed=0)
    with pytest.raises(GanforgeError, match="uint8"):
        classification_accuracy_score(gen.float(), labels, gen, labels)
    with pytest.raises(GanforgeError, match="labels"):
        classification_accuracy_score(gen, labels[:4], gen, labels)
    with pytest.raises(GanforgeError, match="channels"):
        classification_accuracy_score(gen, labels, gen.repeat(1, 3, 1, 1), labels)
