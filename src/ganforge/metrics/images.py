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
    images, labels = ds.images, ds.labels
    if n is not None and len(images) > n:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        images = images[keep]
        labels = labels[keep] if labels is not None else None
    return ds.geometry.restore(images), labels, ds.class_names
