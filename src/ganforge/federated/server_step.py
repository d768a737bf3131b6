"""How the server moves the global weights by the sites' mean change: FedAvg, or FedAvgM.

Plain FedAvg sets the global weights to the sites' images-weighted mean, ``w + mean_i Δ_i``. At the
same number of images seen, that is slow: K sites that each take E steps from the same start move the
model about as far as one site's E steps, where a centralised run would have taken K·E. A server
learning rate η and momentum β (FedAvgM: Hsu, Qi and Brown 2019, "Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification"; the server learning rate as in
Reddi et al. 2021, "Adaptive Federated Optimization") treat the mean change as a step:

    v ← β·v + mean_i Δ_i          w ← w + η·v

η = 1, β = 0 is FedAvg. Only G's and D's parameters move this way; buffers (BatchNorm's running
statistics, spectral norm's vectors, StyleGAN2's w average) take the plain mean, since a scaled running
variance could turn negative, and so does G's moving average, which each site already moves toward
where η will take G (:func:`~ganforge.federated.weights.server_stepped`). The server then refits G's
BatchNorm statistics to the new G (:meth:`~ganforge.federated.server.GlobalRun.load_weights`). The
velocity v is part of the server's checkpoint, so a resumed federation takes the same steps.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch


class ServerStep:
    def __init__(self, lr: float, momentum: float, stepped: Sequence[bool]):
        self.lr, self.momentum = float(lr), float(momentum)
        self.stepped = list(stepped)  # per exchanged tensor: moved by lr and momentum (else the plain mean)
        self.velocity: list[np.ndarray] | None = None  # one float32 array per stepped tensor, after the first round

    @property
    def plain(self) -> bool:
        return self.lr == 1.0 and self.momentum == 0.0

    def apply(self, current: Sequence[np.ndarray], mean_update: Sequence[np.ndarray],
              lr: float | None = None) -> list[np.ndarray]:
        """The new global weights from the current ones and the sites' mean change (same order and shapes);
        ``lr``: this round's learning rate, if not ``self.lr`` (a last round at another rate)."""
        lr = self.lr if lr is None else float(lr)
        if len(current) != len(mean_update) or len(current) != len(self.stepped):
            raise ValueError(f"{len(mean_update)} changes for {len(current)} weights ({len(self.stepped)} known)")
        steps = [d for d, move in zip(mean_update, self.stepped) if move]
        if self.momentum:
            if self.velocity is None:
                self.velocity = [np.zeros_like(d, dtype=np.float32) for d in steps]
            self.velocity = [(self.momentum * v + d).astype(np.float32) for v, d in zip(self.velocity, steps)]
            steps = self.velocity
        scaled = iter(steps)
        return [(w + (lr * next(scaled) if move else d)).astype(np.float32)
                for w, d, move in zip(current, mean_update, self.stepped)]

    def state_dict(self) -> dict[str, Any]:
        return {"velocity": None if self.velocity is None else [torch.from_numpy(v.copy()) for v in self.velocity]}

    def load_state_dict(self, saved: dict[str, Any] | None) -> None:
        velocity = (saved or {}).get("velocity")
        if velocity is not None and len(velocity) != sum(self.stepped):
            warnings.warn(f"the saved server momentum covers {len(velocity)} tensors, this version steps "
                          f"{sum(self.stepped)}: it restarts from zero", stacklevel=2)
            velocity = None
        self.velocity = None if velocity is None else [v.numpy().astype(np.float32) for v in velocity]
