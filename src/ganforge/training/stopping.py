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
        self.max_steps, self.max_epochs = t.max_steps, t.max_epochs
        self.steps_per_epoch, self.d_steps = steps_per_epoch, t.d_steps  # global real batches per epoch
        self.total: int | None = None  # G steps at the step/epoch limit (None: only time limits)
        self.start_at(0, 0)

    def start_at(self, step: int, real_batches: int) -> None:
        """Plan the step/epoch limit from the counters a run starts or resumes at. max_steps counts G updates;
        the epoch limit counts global real batches of the data order (``real_batches``), which keeps the
        position in the data when a run resumes on another number of processes, unlike ``step x d_steps``."""
        bounds = []
        if self.max_steps is not None:
            bounds.append(self.max_steps)
        if self.max_epochs is not None:
            batches_left = math.ceil(self.max_epochs * self.steps_per_epoch) - real_batches
            bounds.append(step + max(0, math.ceil(batches_left / self.d_steps)))
        self.total = min(bounds) if bounds else None

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
