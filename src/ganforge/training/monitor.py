"""Health checks during training: divergence (NaN/Inf, exploding losses) and mode collapse.

Both run at log intervals only, so they add no host synchronisation to the step itself.

* Divergence: a non-finite or huge loss, or non-finite weights. The loop answers by reloading the
  last good checkpoint with lower learning rates (a bounded number of times), then stops clearly.
* Collapse: G's outputs for a fixed batch of noise become much more alike than they were. The
  diversity signal is the mean pairwise distance of those outputs (average-pooled to 8x8, so it
  tracks shapes and layout rather than pixel noise), divided by the same quantity for real images;
  about 1 when G is as varied as the data, 0 when it outputs one image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MonitorConfig

PROBE_SIZE = 8  # side of the pooled images the diversity signal compares
WARMUP_READINGS = 2  # readings before collapse can be declared (the running level needs a history)


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """images (N, C, H, W) in [-1, 1] -> mean L2 distance over all pairs of their 8x8 average-pooled versions."""
    x = F.adaptive_avg_pool2d(images.float(), PROBE_SIZE).flatten(1)  # (N, C*64)
    d = torch.cdist(x, x)  # (N, N)
    n = len(x)
    return float(d.sum() / max(n * (n - 1), 1))


def weights_finite(*modules: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for m in modules for p in m.parameters()]
    return bool(torch.stack(flags).all())


class HealthMonitor:
    """Decides, at each log interval, whether training diverged or collapsed."""

    def __init__(self, cfg: MonitorConfig, real_sample: torch.Tensor | None):
        # real_sample: (N, C, R, R) in [-1, 1]; its diversity is the scale of the signal
        self.cfg = cfg
        # None (a private run, which may not read its images here): the signal in absolute units; only its
        # ratio to its own running level matters for the collapse warning
        self.real_level = max(mean_pairwise_distance(real_sample), 1e-8) if real_sample is not None else 1.0
        self.running: float | None = None  # running level of the diversity signal
        self.readings = 0
        self.most_classes = 0  # most classes covered at any evaluation so far

    def divergence(self, record: dict) -> str | None:
        """A reason string when the logged losses show divergence, else None."""
        for key in ("loss_d", "loss_g"):
            value = record.get(key)
            if value is None:
                continue
            if not math.isfinite(value):
                return f"{key} is {value}"
            if abs(value) > self.cfg.loss_limit:
                return f"{key} = {value:.3g} exceeds monitor.loss_limit {self.cfg.loss_limit:g}"
        return None

    def diversity(self, fake: torch.Tensor) -> float:
        """fake (N, C, R, R) in [-1, 1] from fixed noise -> diversity relative to real images."""
        return mean_pairwise_distance(fake) / self.real_level

    def collapse(self, diversity: float) -> str | None:
        """A warning when diversity fell below collapse_ratio of its running level, else None."""
        self.readings += 1
        warning = None
        if self.running is not None and self.readings > WARMUP_READINGS:
            if diversity < self.cfg.collapse_ratio * self.running:
                warning = (f"possible mode collapse: diversity {diversity:.3g} is below "
                           f"{self.cfg.collapse_ratio:g} x its running level {self.running:.3g}")
        if warning is None:  # the running level follows healthy readings only
            self.running = diversity if self.running is None else 0.8 * self.running + 0.2 * diversity
        return warning

    def classes_dropped(self, results: dict) -> str | None:
        """A warning when an evaluation covers fewer classes than an earlier one did, else None.

        Catches partial collapse that pixel diversity misses: G can stay varied in pixels while
        whole classes disappear (seen with a D learning rate 4x G's on Fashion-MNIST).
        """
        covered = results.get("classes_covered")
        if covered is None:
            return None
        warning = None
        if covered < self.most_classes:
            missing = results.get("classes_missing", [])
            warning = (f"possible mode collapse: {covered} of {results.get('classes_total', '?')} classes covered, "
                       f"down from {self.most_classes}" + (f" (missing: {', '.join(map(str, missing))})" if missing else ""))
        self.most_classes = max(self.most_classes, int(covered))
        return warning

    def state_dict(self) -> dict:
        return {"running": self.running, "readings": self.readings, "most_classes": self.most_classes}

    def load_state_dict(self, state: dict) -> None:
        self.running, self.readings = state["running"], int(state["readings"])
        self.most_classes = int(state.get("most_classes", 0))
