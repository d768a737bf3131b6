"""Loading the image sets an evaluation compares, at the data's own size."""
from __future__ import annotations

import torch

from ..config import DataConfig
from ..data import load_dataset


def load_at_own_size(data: DataConfig | str, n: int | None = None, seed: int = 0, progress: bool = True,
                     resolution: int | None = None):
    """Images (N, C, H, W) uint8 at their own size (padding undone) and labels; a seeded random subset of n."""
    cfg = DataConfig(source=data, resolution=resolution) if isinstance(data, str) else data
    ds = load_dataset(cfg.source, resolution=cfg.resolution, channels=cfg.channels, fit=cfg.fit,
                      max_bad_fraction=cfg.max_bad_fraction, limit=cfg.limit, cache_dir=cfg.cache_dir,
                      progress=progress)
    images, labels = seeded_subset(ds.images, ds.labels, n, seed)
    return ds.geometry.restore(images), labels, ds.class_names


def seeded_subset(images: torch.Tensor, labels: torch.Tensor | None, n: int | None, seed: int):
    """(images, labels) reduced to a random subset of ``n`` drawn with ``seed``, in their original order (all of
    them when there are no more than ``n``): the reference images of ``ganforge eval`` and of periodic evaluation."""
    if n is None or len(images) <= n:
        return images, labels
    keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return images[keep], (labels[keep] if labels is not None else None)
