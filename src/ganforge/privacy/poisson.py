"""Poisson sampling of the private records: what the accountant's subsampling analysis assumes.

Every record joins batch b independently with probability q, so batch sizes vary around q N (and
may be 0). The draws come from a secret seed (kept in the checkpoint, never in config.json): the
amplification by subsampling holds only while an observer cannot tell which records were drawn.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..seeds import stream_seed

SAMPLING_STREAM = 1


class PoissonOrder:
    """The data order of a private run, with :class:`~ganforge.training.data_order.EpochOrder`'s interface."""

    def __init__(self, n_records: int, sample_rate: float, secret_seed: Callable[[], int],
                 device: torch.device | None = None):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sampling rate must be in (0, 1], got {sample_rate}")
        self.n, self.sample_rate, self.secret_seed, self.device = n_records, sample_rate, secret_seed, device
        self.batches_per_epoch = max(1, round(1 / sample_rate))  # expected batches per pass over the data

    def indices(self, batch: int) -> torch.Tensor:
        """(B,) indices of the records in batch number ``batch``; B ~ Binomial(N, q)."""
        generator = torch.Generator().manual_seed(stream_seed(self.secret_seed(), batch, SAMPLING_STREAM))
        mask = torch.rand(self.n, generator=generator) < self.sample_rate  # (N,)
        return mask.nonzero().flatten().to(self.device)
