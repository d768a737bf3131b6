"""Shared fixtures: tiny data sets and tiny model settings so every test runs in seconds on a CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

# `make test` runs the suite on two workers (pytest-xdist, `--dist loadfile --no-loadscope-reorder`: each
# module in one worker, so its module fixtures are built once, in the order collected here). These modules
# take longest (the Flower deployments, about 2 minutes of processes starting and waiting; the metric behaviour
# tests, which train domain classifiers), so they start first and the short tests fill in around them.
LONGEST_FIRST = ("federated/test_flower.py", "metrics/test_evaluate_fashion.py", "metrics/test_evaluate.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.path.as_posix()
        return next((k for k, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the collection order otherwise


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Downloads, domain networks and feature caches go to a temporary folder, never ~/.cache."""
    import os

    old = os.environ.get("GANFORGE_CACHE")
    os.environ["GANFORGE_CACHE"] = str(tmp_path_factory.mktemp("ganforge-cache"))
    yield
    if old is None:
        os.environ.pop("GANFORGE_CACHE", None)
    else:
        os.environ["GANFORGE_CACHE"] = old


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """40 grayscale 14x14 images with 2 labels: blobs whose brightness depends on the label."""
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    images = (rng.random((40, 14, 14)) * 100 + labels[:, None, None] * 120).astype(np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels.astype(np.uint8))
    return path

