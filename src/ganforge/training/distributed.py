"""Several processes under torchrun: PyTorch DDP set-up and the few agreements ranks need.

``torchrun --nproc-per-node N -m ganforge train ...`` starts N processes with RANK,
LOCAL_RANK and WORLD_SIZE in their environment; :func:`init` joins them into one process
group (NCCL on GPUs, gloo on CPUs) and gives each its device. Training then differs from a
single process in four places only, all in the loop: each rank reads its own shard of every
epoch's order and its own slice of the noise, G and D are wrapped in DDP (gradients averaged
over ranks), only rank 0 writes (logs, grids, checkpoints), and the ranks agree, at log
intervals, on the logged statistics (their mean) and on stopping (time budget, Ctrl-C, collapse).

DDP notes: D runs twice (real, fake) before one backward, so it is wrapped with
``broadcast_buffers=False`` (``forward_sync_buffers=False`` in newer PyTorch; BatchNorm buffers would otherwise be re-broadcast between the two
forwards; PyTorch #22095). Gradient penalties take the input gradient with
``autograd.grad(create_graph=True)`` and then one ordinary backward, which DDP supports. The G
step runs D unwrapped: D is not updated there, so no reduction of D's gradients is expected.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """True inside a torchrun (or other env://) launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_name: str) -> tuple[Ranks, torch.device | None]:
    """Join the process group of a torchrun launch. -> (ranks, the device for this rank, or None to
    let the caller resolve ``device_name`` when not launched)."""
    if not launched():
        return Ranks(), None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device_name!r} requested but no CUDA GPU is available; use --device cpu")
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Ranks(rank, world, local), device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around a network (see the module notes for ``broadcast_buffers``)."""
    from torch.nn.parallel import DistributedDataParallel

    import inspect

    ids = [device.index] if device.type == "cuda" else None
    # Newer PyTorch names the option forward_sync_buffers (and deprecates broadcast_buffers); buffers
    # are still synced once at start, which is harmless here: every rank builds the same weights.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (in place)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.div_(dist.get_world_size())


def total(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks (in place)."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
