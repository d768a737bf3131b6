"""The order in which the loop reads the training images: a fresh permutation every epoch.

Epoch e's order is a function of (seed, e) alone, so a resumed run reads exactly what an
uninterrupted one would. Under DDP every rank computes the same order and reads its own
shard of each global batch (batch_size images per rank, so world_size x batch_size in all).
"""
from __future__ import annotations

import math

import torch


class EpochOrder:
    def __init__(self, n_images: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 device: torch.device | None = None):
        self.n, self.batch_size, self.seed = n_images, batch_size, seed
        self.rank, self.world_size, self.device = rank, world_size, device
        self.batches_per_epoch = n_images // (batch_size * world_size)  # the last partial batch is dropped
        self._epoch, self._perm = -1, None

    def indices(self, batch: int) -> torch.Tensor:
        """(batch_size,) image indices of this rank's part of global batch number ``batch``."""
        epoch, index = divmod(batch, self.batches_per_epoch)
        if epoch != self._epoch:
            order_rng = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=order_rng).to(self.device)
            self._epoch = epoch
        start = (index * self.world_size + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def continue_from(self, batch: int, world_size: int) -> int:
        """The global batch number of this order that continues a run which has read ``batch`` global
        batches on ``world_size`` processes: same epoch, at the first of this order's batches that starts
        at or after the images already read in the epoch's permutation. Exact when that position is a
        whole number of this order's global batches (always when the process count shrinks by a whole
        factor); otherwise the rest of the epoch's permutation up to that batch (fewer images than one
        global batch) is left unread in this epoch, as the partial batch at each epoch's end is."""
        if world_size == self.world_size:
            return batch
        global_batch = self.batch_size * world_size  # the images of one of the saved run's global batches
        epoch, index = divmod(batch, self.n // global_batch)
        read = index * global_batch  # images of epoch `epoch`'s permutation already read
        return epoch * self.batches_per_epoch + min(math.ceil(read / (self.batch_size * self.world_size)),
                                                    self.batches_per_epoch)
