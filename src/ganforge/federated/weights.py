"""The weights a federated round exchanges, as one ordered list of float arrays, and their average.

Both sides build the same networks from the same configuration (:meth:`TrainState.networks`: G,
D and G's moving average), so an update travels as a plain list of arrays in the order of
:func:`exchanged_tensors`; names never travel. Only floating-point tensors are exchanged: the
integer BatchNorm step counters stay each side's own. Sites send the change of their weights
over the round (local minus global), which stays small, so that secure aggregation's fixed-point
encoding (a clipping range, see :mod:`ganforge.federated.flower_secure`) loses nothing of it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..runs import GENERATOR_EMA


def exchanged_tensors(networks: dict[str, nn.Module]) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of every floating-point parameter and buffer, networks in name order."""
    out = []
    for net_name in sorted(networks):
        for key, tensor in networks[net_name].state_dict(keep_vars=True).items():
            if tensor.is_floating_point():
                out.append((f"{net_name}.{key}", tensor))
    return out


def server_stepped(networks: dict[str, nn.Module]) -> list[bool]:
    """For each exchanged tensor (in order): does the server's learning rate and momentum move it (True: a
    parameter of G or D) or does it take the plain mean (False)? Buffers such as BatchNorm's running
    statistics are averaged, and so is G's moving average: each site already moves its average toward
    the point the server's step will take G to (:meth:`~ganforge.training.ema.EMA.follow`); scaling its
    change again would carry it past G, the further each round once η times the share of the way it covers
    in a round exceeds 2."""
    return [isinstance(t, nn.Parameter) and not name.startswith(GENERATOR_EMA + ".")
            for name, t in exchanged_tensors(networks)]


def to_arrays(networks: dict[str, nn.Module]) -> list[np.ndarray]:
    """float32 copies of the exchanged tensors, in order."""
    return [t.detach().float().cpu().numpy().copy() for _, t in exchanged_tensors(networks)]


@torch.no_grad()
def load_arrays(networks: dict[str, nn.Module], arrays: Sequence[np.ndarray]) -> None:
    """Copy ``arrays`` (as :func:`to_arrays` orders them) into the networks; refuses a mismatch."""
    tensors = exchanged_tensors(networks)
    if len(arrays) != len(tensors):
        raise ValueError(f"expected {len(tensors)} weight arrays, got {len(arrays)}: the two sides built "
                         "different networks (different configuration or ganforge version)")
    for (name, tensor), array in zip(tensors, arrays):
        if tuple(array.shape) != tuple(tensor.shape):
            raise ValueError(f"{name}: expected shape {tuple(tensor.shape)}, got {tuple(array.shape)}")
        tensor.copy_(torch.as_tensor(np.asarray(array)).to(tensor.dtype))


def difference(after: Sequence[np.ndarray], before: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [a - b for a, b in zip(after, before)]


def weighted_mean(updates: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> list[np.ndarray]:
    """sum_i w_i u_i / sum_i w_i, array by array (float64 sums, float32 result)."""
    total = float(sum(weights))
    if not updates or total <= 0:
        raise ValueError("nothing to average: no update with a positive weight")
    return [(sum(np.float64(w) * u[k] for u, w in zip(updates, weights)) / total).astype(np.float32)
            for k in range(len(updates[0]))]


def add(base: Sequence[np.ndarray], delta: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [(b + d).astype(np.float32) for b, d in zip(base, delta)]


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


def payload_bytes(arrays: Sequence[np.ndarray]) -> int:
    return int(sum(a.nbytes for a in arrays))
