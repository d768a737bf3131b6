"""The loop's answer to what the health monitor finds: roll back on divergence, warn (or stop) on collapse.

:class:`~ganforge.training.monitor.HealthMonitor` decides *whether* training diverged or collapsed;
:class:`HealthGuard` holds what follows from it across a run — how many rollbacks were made, the
learning-rate multiplier they left, whether a collapse should stop the run — and checkpoints it.
The reload itself is the loop's (it owns the run folder); the guard says whether it is allowed.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..errors import GanforgeError
from .monitor import HealthMonitor, weights_finite


class HealthGuard:
    """Divergence and collapse handling for one run; ``state_dict`` goes into every checkpoint."""

    def __init__(self, cfg: Config, real_probe: torch.Tensor | None):
        # real_probe: (N, C, R, R) real images in [-1, 1], the scale of the diversity signal (None: unscaled)
        self.cfg = cfg.monitor
        self.monitor = HealthMonitor(cfg.monitor, real_probe)
        self.rollbacks, self.lr_scale = 0, 1.0  # divergence recoveries so far, learning-rate multiplier
        self.collapse_stop: str | None = None  # a stop reason once a collapse warning stops the run

    def divergence(self, record: dict, *networks: torch.nn.Module) -> str | None:
        """Why this interval counts as diverged (losses in ``record``, non-finite weights), or None."""
        reason = self.monitor.divergence(record)
        if reason is None and not weights_finite(*networks):
            reason = "the weights hold NaN or Inf"
        return reason

    def diversity(self, fake: torch.Tensor) -> tuple[float, str | None]:
        """fake (N, C, R, R) from fixed noise -> (diversity relative to real images, collapse warning or None)."""
        value = float(f"{self.monitor.diversity(fake):.4g}")
        return value, self.monitor.collapse(value)

    def classes_dropped(self, results: dict) -> str | None:
        return self.monitor.classes_dropped(results)

    def note_collapse(self, warning: str | None) -> None:
        if warning and self.cfg.stop_on_collapse:
            self.collapse_stop = "stopped on mode collapse (monitor.stop_on_collapse)"

    def begin_rollback(self, reason: str, step: int, folder: Path | None) -> tuple[int, float]:
        """The (rollbacks, lr_scale) to continue with after reloading ``folder``; raises when no rollback is
        left (turned off, the limit reached, or no checkpoint)."""
        if not self.cfg.rollback or self.rollbacks >= self.cfg.max_rollbacks or folder is None:
            tried = f" after {self.rollbacks} rollback(s)" if self.rollbacks else ""
            raise GanforgeError(f"training diverged at step {step} ({reason}){tried}; "
                                f"last good checkpoint: {folder or 'none'}")
        return self.rollbacks + 1, self.lr_scale * self.cfg.rollback_lr_factor

    def finish_rollback(self, counters: tuple[int, float], state) -> str:
        """After the reload: keep the new counters, scale the learning rates; returns the event's detail."""
        self.rollbacks, self.lr_scale = counters
        self.apply_lr_scale(state)
        return f"learning rates x{self.lr_scale:g} (rollback {self.rollbacks} of {self.cfg.max_rollbacks})"

    def apply_lr_scale(self, state) -> None:
        """Scale ``state``'s (a TrainState's) learning rates from their base; a schedule keeps the scale."""
        state.set_lr_scale(self.lr_scale)

    def state_dict(self) -> dict:
        # flat keys, as checkpoints have held them from the start
        return {"rollbacks": self.rollbacks, "lr_scale": self.lr_scale, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.rollbacks, self.lr_scale = int(state["rollbacks"]), float(state["lr_scale"])
        self.monitor.load_state_dict(state["monitor"])
