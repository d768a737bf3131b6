"""Classification Accuracy Score (CAS) for class-conditional generators.

Ravuri & Vinyals (2019), "Classification Accuracy Score for Conditional Generative Models":
train a classifier only on generated images, labelled with the classes they were generated
for, and report its accuracy on real test images. A generator that ignores its labels,
misses classes or produces unrealistic images gives a classifier that fails on real data.
The classifier is ganforge's domain network (``ganforge.metrics.domain``), trained from
scratch with its usual recipe.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError
from .domain import extract, train_domain_net


def _images(name: str, x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dtype != torch.uint8 or t.ndim != 4:
        raise GanforgeError(f"CAS needs {name} images as uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")
    return t


def _labels(name: str, y, n: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if t.ndim != 1 or len(t) != n or t.is_floating_point() or t.is_complex() or (len(t) and t.min() < 0):
        raise GanforgeError(f"CAS needs {n} non-negative integer {name} labels, got {t.dtype} {tuple(t.shape)}")
    return t.long()


def classification_accuracy_score(
    gen_images,
    gen_labels,
    test_images,
    test_labels,
    epochs: int = 3,
    seed: int = 0,
) -> float:
    """Accuracy on (test_images, test_labels) of a domain classifier trained on (gen_images, gen_labels).

    Images are uint8 (N, C, H, W) tensors or arrays (any size; the network resizes to 32x32),
    labels (N,) integers. Real classes the generated set never shows cannot be predicted and
    count as errors.
    """
    xg, xt = _images("generated", gen_images), _images("test", test_images)
    yg, yt = _labels("generated", gen_labels, len(xg)), _labels("test", test_labels, len(xt))
    if len(xg) == 0 or len(xt) == 0:
        raise GanforgeError("CAS needs at least one generated and one test image")
    if xg.shape[1] != xt.shape[1]:
        raise GanforgeError(f"CAS: generated images have {xg.shape[1]} channels and test images {xt.shape[1]}")
    net = train_domain_net(xg, yg, epochs=epochs, seed=seed, progress=False)
    _, probs = extract(net, xt)
    return float((probs.argmax(dim=1) == yt).float().mean())
