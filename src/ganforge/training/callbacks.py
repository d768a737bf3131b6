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
from ..labels import balanced_labels, class_grid
from ..pixels import to_uint8
from .runtime import Precision
from .steps import call


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

    The reference features are computed once, before training; the samples come from a fixed seed,
    with balanced classes for a conditional G.
    """

    def __init__(self, dataset, metrics: str, eval_n: int, seed: int, extractor: str, cache_dir, progress: bool,
                 num_classes: int = 0):
        from ..metrics.evaluate import Evaluator, parse_metrics

        self.metrics = parse_metrics(metrics)
        self.eval_n, self.seed, self.num_classes = eval_n, seed, num_classes
        self.restore = dataset.geometry.restore
        images, labels = dataset.images, dataset.labels
        if len(images) > eval_n:
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:eval_n].sort().values
            images, labels = images[keep], (labels[keep] if labels is not None else None)
        self.evaluator = Evaluator(self.restore(images), labels, extractor=extractor, cache_dir=cache_dir,
                                   progress=progress)
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of the best evaluation so far

    @torch.no_grad()
    def __call__(self, G: nn.Module, z_dim: int, precision: Precision, step: int) -> tuple[dict, bool]:
        """(results, whether they are the best so far)."""
        from ..metrics.evaluate import primary_value

        device = next(G.parameters()).device
        was_training = G.training
        G.eval()
        z = torch.randn(self.eval_n, z_dim, generator=torch.Generator().manual_seed(self.seed + 2))
        labels = balanced_labels(self.eval_n, self.num_classes) if self.num_classes else None
        with precision.autocast():
            fake = torch.cat([
                to_uint8(call(G, z[i:i + 500].to(device),
                              labels[i:i + 500].to(device) if labels is not None else None).float().cpu())
                for i in range(0, self.eval_n, 500)])
        G.train(was_training)
        self.evaluator.progress = False
        results = self.evaluator(self.restore(fake), self.metrics)
        key, value, higher = primary_value(self.metrics[0], results)
        improved = self.best is None or (value > self.best["value"] if higher else value < self.best["value"])
        if improved:
            self.best = {"metric": key, "value": value, "step": step}
        return results, improved
