"""End-to-end metric behaviour on the built-in shapes, and the evaluator's checks and caches (Fashion-MNIST:
test_evaluate_fashion.py)."""
import numpy as np
import pytest
import torch

from ganforge.data import load_dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import Evaluator, primary_value
from ganforge.metrics.names import parse_metrics
from ganforge.metrics.features import Extractor, cached_features
from helpers import check_metric_behaviour


def split(source, n_train, n_test):
    """Three disjoint random parts: train (n_train), test (n_test) and other real images (n_test)."""
    ds = load_dataset(source, limit=n_train + 2 * n_test, progress=False)
    images = ds.geometry.restore(ds.images)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    parts = perm[:n_train], perm[n_train : n_train + n_test], perm[n_train + n_test :]
    return [t for idx in parts for t in (images[idx], ds.labels[idx])]


@pytest.fixture(scope="module")
def shapes():
    return split("builtin:shapes", 3000, 1000)


def test_metric_behaviour_on_shapes(shapes):
    held, _ = check_metric_behaviour(*shapes, n_classes=5)
    assert held["kid_domain"] < 0.01


def test_class_coverage_with_another_extractor_reads_the_domain_classifier(monkeypatch):
    """With a feature network that has no classifier of the data's classes (Inception), class
    coverage takes both the generated images' classes and the reference confusion from the domain
    classifier."""
    import ganforge.metrics.evaluate as evaluate_module

    original = evaluate_module.make_extractor

    def make_extractor(name, *args):
        if name == "toy":
            return Extractor("toy", "toy-v1", lambda batch: (batch.float().flatten(1)[:, :8], None))
        return original(name, *args)

    monkeypatch.setattr(evaluate_module, "make_extractor", make_extractor)
    labels = torch.arange(300) % 3
    noise = torch.randint(0, 30, (300, 1, 12, 12), generator=torch.Generator().manual_seed(0))
    images = (labels[:, None, None, None] * 100 + noise).to(torch.uint8)
    ev = Evaluator(images, labels, extractor="toy", progress=False)
    assert ev.real_classifier.probs.shape == (300, 3)
    one = ev(images[labels == 1], ["modes"])
    assert one["extractor"] == "toy" and one["classes_covered"] == 1 and one["classes_missing"] == [0, 2]
    assert ev(images, ["modes"])["classes_covered"] == 3


def test_cached_reference_features_reused_and_invalidated(tmp_path):
    calls = []

    def fn(batch):
        calls.append(len(batch))
        return batch.float().flatten(1)[:, :4], None

    ext = Extractor("toy", "toy-v1", fn)
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    a = cached_features(ext, images, tmp_path, progress=False)
    b = cached_features(ext, images, tmp_path, progress=False)
    assert calls == [10] and np.array_equal(a.features, b.features)  # second call read the cache
    cached_features(ext, images[:9], tmp_path, progress=False)  # other data: recomputed
    cached_features(Extractor("toy", "toy-v2", fn), images, tmp_path, progress=False)  # other network: recomputed
    assert calls == [10, 9, 10]


def test_shape_mismatch_and_unknown_metric(shapes):
    _, _, test_x, test_y, _, _ = shapes
    ev = Evaluator(test_x[:200], test_y[:200], extractor="domain", progress=False)  # (a quick network suffices)
    with pytest.raises(GanforgeError, match="generated images are"):
        ev(torch.zeros(4, 1, 32, 32, dtype=torch.uint8), ["fd"])
    with pytest.raises(GanforgeError, match="unknown metric"):
        parse_metrics("fd,sharpness")
    with pytest.raises(GanforgeError, match="held-out"):
        ev(test_x, ["memorisation"])


def test_primary_value_direction():
    assert primary_value("fd", {"fd_domain": 3.0}) == ("fd_domain", 3.0, False)
    assert primary_value("dc", {"density_domain": 1.0, "coverage_domain": 0.5}) == ("coverage_domain", 0.5, True)
