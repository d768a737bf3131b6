"""End-to-end metric behaviour on Fashion-MNIST (from ../shared/data). A module of its own so that the test
suite's two workers can run it beside the built-in shapes' tests (each trains a domain classifier)."""
import numpy as np
import pytest
import torch

from ganforge.metrics.evaluate import Evaluator
from helpers import check_metric_behaviour, shared_file

FASHION_TRAIN = 4000  # training images of the Fashion-MNIST domain classifier, shared by the tests below


@pytest.fixture(scope="module")
def fashion():
    """Fashion-MNIST as (images (70000, 1, 28, 28) uint8, labels): 60,000 training images, then 10,000 test ones.
    The domain classifier both tests train is the same network (the same first 4,000 training images and labels),
    so it is trained once and then read from the session's cache."""
    data = np.load(shared_file("fashion-mnist.npz"))
    return torch.from_numpy(data["images"])[:, None], torch.from_numpy(data["labels"].astype(np.int64))


def test_metric_behaviour_on_fashion_mnist(fashion):
    images, labels = fashion
    train, test, other = slice(0, FASHION_TRAIN), slice(60000, 61000), slice(61000, 62000)  # disjoint
    check_metric_behaviour(images[train], labels[train], images[test], labels[test], images[other], labels[other],
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
