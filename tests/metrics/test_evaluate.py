"""End-to-end metric behaviour on real-looking data: the built-in shapes (always) and Fashion-MNIST (when present)."""
import numpy as np
import pytest
import torch

from ganforge.data import load_dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import Evaluator, parse_metrics, primary_value
from ganforge.metrics.features import Extractor, cached_features
from helpers import shared_file


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


FASHION_TRAIN = 4000  # training images of the Fashion-MNIST domain classifier, shared by the tests below


@pytest.fixture(scope="module")
def fashion():
    """Fashion-MNIST as (images (70000, 1, 28, 28) uint8, labels): 60,000 training images, then 10,000 test ones.
    The domain classifier both tests train is the same network (the same first 4,000 training images and labels),
    so it is trained once and then read from the session's cache."""
    data = np.load(shared_file("fashion-mnist.npz"))
    return torch.from_numpy(data["images"])[:, None], torch.from_numpy(data["labels"].astype(np.int64))


def check_behaviour(train_x, train_y, test_x, test_y, other_x, other_y, n_classes, only_class=0,
                    max_covered_for_one_class=1):
    ev = Evaluator(test_x, test_y, train=train_x, train_labels=train_y, extractor="domain", progress=False)
    metrics = parse_metrics("fd,kid,pr,dc,modes,memorisation")
    self_fd = ev(test_x, ["fd"])["fd_domain"]
    held = ev(other_x, metrics)  # other real images, unseen in training: near-ideal values
    noise = ev(torch.randint(0, 256, test_x.shape, dtype=torch.uint8), ["fd"])["fd_domain"]
    repeated = ev(test_x[:1].expand_as(test_x).contiguous(), ["fd", "pr"])
    one_class = ev(test_x[test_y == only_class].repeat(n_classes, 1, 1, 1)[: len(test_x)], ["fd", "modes"])
    copies = ev(train_x[: len(test_x)], ["memorisation"])

    assert abs(self_fd) < 1e-6 * max(1.0, held["fd_domain"])
    assert held["fd_domain"] > 0
    for bad in (noise, repeated["fd_domain"], one_class["fd_domain"]):
        assert bad > 20 * held["fd_domain"]
    assert held["classes_covered"] == n_classes and held["classes_missing"] == []
    assert held["memorisation_near_copy_share"] < 0.05 and copies["memorisation_near_copy_share"] > 0.95
    # a classifier trained on a few thousand images confuses a little: a lone class leaks into others,
    # which the correction for its confusion on the reference images explains away
    assert one_class["classes_covered"] <= max_covered_for_one_class
    assert len(one_class["classes_missing"]) >= n_classes - max_covered_for_one_class
    assert held["precision_domain"] > 0.6 and held["recall_domain"] > 0.6 and held["coverage_domain"] > 0.6
    assert repeated["recall_domain"] < 0.05
    return held, copies


def test_metric_behaviour_on_shapes(shapes):
    held, _ = check_behaviour(*shapes, n_classes=5)
    assert held["kid_domain"] < 0.01


def test_metric_behaviour_on_fashion_mnist(fashion):
    images, labels = fashion
    train, test, other = slice(0, FASHION_TRAIN), slice(60000, 61000), slice(61000, 62000)  # disjoint
    check_behaviour(images[train], labels[train], images[test], labels[test], images[other], labels[other],
                    n_classes=10, only_class=1)  # trousers: rarely confused


def test_class_coverage_of_real_fashion_mnist_reads_true(fashion):
    """5,000 real dresses read as 1 class and held-out images as 10, against a held-out reference.

    The domain classifier trains on the first 4,000 training images (less accurate than on all 60,000: it
    spreads the one-class set over 4 classes uncorrected); its confusion is measured on 5,000 held-out
    reference images. The dresses are the last 5,000 of the training part, none seen by the classifier.
    """
    images, labels = fashion
    dresses = torch.nonzero(labels[:60000] == 3).flatten()[-5000:]
    assert dresses.min() >= FASHION_TRAIN
    ev = Evaluator(images[60000:65000], labels[60000:65000], train=images[:FASHION_TRAIN],
                   train_labels=labels[:FASHION_TRAIN], extractor="domain", progress=False)
    one_class = ev(images[dresses], ["modes"])
    held_out = ev(images[65000:], ["modes"])
    assert one_class["classes_covered_raw"] > 1  # the classifier's confusion alone reads extra classes
    assert one_class["classes_covered"] == 1 and 3 not in one_class["classes_missing"]
    assert held_out["classes_covered"] == held_out["classes_covered_raw"] == 10 and held_out["classes_missing"] == []


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
