"""When a run stops: step and epoch limits, the time budget, Ctrl-C, a collapse, and agreement under DDP."""
from __future__ import annotations

import contextlib
import math
import signal
from typing import Callable

import torch

from ..config import TrainConfig, parse_duration
from . import distributed


class StopRules:
    """The stopping rules of one run. ``reason(step, elapsed)`` is this process's view; ``decide`` is the
    one every process acts on: under DDP the ranks agree at log intervals (the step limit is the same for
    all; the time budget, Ctrl-C and a collapse are seen by one rank and shared)."""

    def __init__(self, t: TrainConfig, steps_per_epoch: int, ranks: distributed.Ranks, device: torch.device,
                 collapse: Callable[[], str | None] = lambda: None):
        self.log_every = t.log_every
        self.max_time = parse_duration(t.max_time)
        self.ranks, self.device = ranks, device
        self.collapse = collapse  # a stop reason from the health guard (or the privacy budget), or None
        self.interrupted = False  # set by the first Ctrl-C
        bounds = []
        if t.max_steps is not None:
            bounds.append(t.max_steps)
        if t.max_epochs is not None:
            bounds.append(math.ceil(t.max_epochs * steps_per_epoch / t.d_steps))
        self.total: int | None = min(bounds) if bounds else None  # G steps at the step/epoch limit

    def reason(self, step: int, elapsed: float) -> str | None:
        if self.interrupted:
            return "interrupted"
        if self.total is not None and step >= self.total:
            return "reached the step/epoch limit"
        if self.max_time is not None and elapsed >= self.max_time:
            return "reached the time budget"
        return self.collapse()  # (or the privacy budget): after the limits, which name a planned end first

    def decide(self, step: int, elapsed: float) -> str | None:
        """Whether to stop after this step; every rank calls it at every step."""
        reason = self.reason(step, elapsed)
        if not self.ranks.enabled or (self.total is not None and step >= self.total):
            return reason
        if step % self.log_every:
            return None
        stop = distributed.any_rank(reason is not None, self.device)  # every rank calls it at the same step
        return reason or ("stopped with the other processes" if stop else None)

    @contextlib.contextmanager
    def catching_interrupts(self):
        """First Ctrl-C: finish the current step, save and stop. Second: stop at once."""
        def handler(signum, frame):
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
