"""What the loop does around the steps, each piece on its own: sample grids and periodic evaluation.

Each holds its own state (the fixed noise; the reference features and the best result so far)
and is called by the loop with the generator to look at; only rank 0 calls them under DDP.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..imageio import save_grid
from ..labels import class_grid
from ..pixels import to_uint8
from .runtime import Precision


class SampleGrid:
    """Grids from fixed noise, so that successive grids show the same samples evolving.

    A conditional grid has one row per class, each column one noise vector repeated down the rows.
    """

    def __init__(self, n: int, z_dim: int, seed: int, num_classes: int, device: torch.device):
        self.noise = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)  # (n, z_dim)
        self.num_classes = num_classes
        self.columns, self.labels = None, None
        if num_classes:
            labels, self.columns = class_grid(num_classes, n)
            self.labels = labels.to(device)  # (K * cols,)

    @torch.no_grad()
    def images(self, G: nn.Module, precision: Precision) -> torch.Tensor:
        """G's outputs for the fixed noise (and classes), (n, C, R, R) in [-1, 1], in eval mode."""
        was_training = G.training
        G.eval()
        with precision.autocast():
            if self.labels is None:
                images = G(self.noise).float()
            else:
                images = G(self.noise[: self.columns].repeat(self.num_classes, 1), self.labels).float()
        G.train(was_training)
        return images

    def save(self, G: nn.Module, precision: Precision, restore: Callable, folder: Path, step: int) -> Path:
        """folder/step-NNNNNNNN.png and folder/latest.png; ``restore`` maps uint8 images to the data's size."""
        images = restore(to_uint8(self.images(G, precision).cpu()))
        path = save_grid(images, folder / f"step-{step:08d}.png", nrow=self.columns)
        save_grid(images, folder / "latest.png", nrow=self.columns)
        return path


class PeriodicEvaluation:
    """Metrics of ``eval_n`` samples against (up to ``eval_n``) training images, and the best weights so far.

    It measures what ``ganforge eval RUN/best --n eval_n`` measures for the same weights, so that best.json's
    value is the number that command prints: the reference is the same seeded subset of the training images,
    the samples the same noise and classes (``TrainedGenerator.sample`` with the eval seed, balanced classes
    for a conditional G), drawn in float32 whatever the training precision. The reference features are
    computed once, before training; the feature network runs on ``device`` (the training device).
    """

    def __init__(self, dataset, metrics: str, eval_n: int, extractor: str, cache_dir, progress: bool,
                 num_classes: int = 0, device: torch.device | str = "cpu", seed: int | None = None):
        from ..metrics.evaluate import Evaluator
        from ..metrics.names import parse_metrics
        from ..metrics.images import seeded_subset
        from ..metrics.run_eval import DEFAULT_SEED

        self.metrics = parse_metrics(metrics)
        self.eval_n, self.num_classes = eval_n, num_classes
        self.seed = DEFAULT_SEED if seed is None else seed
        self.geometry = dataset.geometry
        images, labels = seeded_subset(dataset.images, dataset.labels, eval_n, self.seed)
        self.evaluator = Evaluator(self.geometry.restore(images), labels, extractor=extractor, cache_dir=cache_dir,
                                   progress=progress, device=device)
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step", "n", "seed"} of the best evaluation

    @torch.no_grad()
    def __call__(self, G: nn.Module, z_dim: int, step: int) -> tuple[dict, bool]:
        """(results, whether they are the best so far)."""
        from ..metrics.evaluate import primary_value
        from ..sampling import TrainedGenerator

        gen = TrainedGenerator(G=G, arch="", geometry=self.geometry, class_names=[], step=step, z_dim=z_dim,
                               num_classes=self.num_classes)
        was_training = G.training
        try:
            fake = gen.sample(self.eval_n, seed=self.seed)  # uint8 at the data's size, as ganforge eval samples
        finally:
            G.train(was_training)
        self.evaluator.progress = False
        results = self.evaluator(fake, self.metrics)
        key, value, higher = primary_value(self.metrics[0], results)
        improved = self.best is None or (value > self.best["value"] if higher else value < self.best["value"])
        if improved:
            self.best = {"metric": key, "value": value, "step": step, "n": self.eval_n, "seed": self.seed}
        return results, improved
