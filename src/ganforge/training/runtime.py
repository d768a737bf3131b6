"""Numeric precision choices and the process-wide torch settings a training run makes.

Device resolution and CPU feature detection live in :mod:`ganforge.devices` (re-exported here).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..devices import (  # re-exported: they lived here before
    NATIVE_BF16_FLAGS,
    cpu_flags,
    cpu_has_native_bf16,
    cpu_name,
    native_bf16_flags,
    resolve_device,
)
from ..errors import ConfigError

__all__ = [
    "NATIVE_BF16_FLAGS", "cpu_flags", "cpu_has_native_bf16", "cpu_name", "native_bf16_flags", "resolve_device",
    "Precision", "GPU_TRAINING_SETTINGS", "training_settings", "get_backend_settings", "set_backend_settings",
    "backend_settings", "resolve_precision",
]


@dataclass(frozen=True)
class Precision:
    """How the forward passes run: plain float32 or bfloat16 autocast."""

    name: str  # "fp32" | "bf16"
    device_type: str

    def autocast(self):
        if self.name == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


# What a CUDA training run sets for itself (process-wide torch settings): TF32 matrix maths and
# cuDNN's autotuner. ``backend_settings()`` saves and restores them around code that must not leak them.
GPU_TRAINING_SETTINGS = {"matmul_allow_tf32": True, "cudnn_allow_tf32": True, "cudnn_benchmark": True}


def training_settings(device: torch.device) -> dict[str, object]:
    """The process-wide settings a training run on ``device`` wants: GPU_TRAINING_SETTINGS on CUDA, none elsewhere."""
    return dict(GPU_TRAINING_SETTINGS) if device.type == "cuda" else {}


def get_backend_settings() -> dict[str, object]:
    """The process-wide torch settings that training changes (see :func:`backend_settings`)."""
    return {
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def set_backend_settings(settings: dict[str, object]) -> None:
    """Apply the settings named in ``settings`` (keys as in :func:`get_backend_settings`)."""
    unknown = set(settings) - {"matmul_allow_tf32", "cudnn_allow_tf32", "cudnn_benchmark", "float32_matmul_precision"}
    if unknown:
        raise ValueError(f"unknown backend settings: {', '.join(sorted(unknown))}")
    if "matmul_allow_tf32" in settings:
        torch.backends.cuda.matmul.allow_tf32 = bool(settings["matmul_allow_tf32"])
    if "cudnn_allow_tf32" in settings:
        torch.backends.cudnn.allow_tf32 = bool(settings["cudnn_allow_tf32"])
    if "cudnn_benchmark" in settings:
        torch.backends.cudnn.benchmark = bool(settings["cudnn_benchmark"])
    # after allow_tf32, which also moves the matmul precision ("high" <-> "highest"): this restores "medium" too
    if "float32_matmul_precision" in settings:
        torch.set_float32_matmul_precision(str(settings["float32_matmul_precision"]))


@contextlib.contextmanager
def backend_settings(**overrides):
    """Run a block under its own TF32/cuDNN settings and restore the previous ones afterwards.

    ``with backend_settings(): Trainer(...)`` keeps what the Trainer sets (TF32, cudnn.benchmark
    on CUDA) inside the block; keyword overrides (``matmul_allow_tf32=False``, ...) apply on entry.
    """
    saved = get_backend_settings()
    try:
        set_backend_settings(overrides)
        yield
    finally:
        set_backend_settings(saved)


def resolve_precision(name: str, device: torch.device, configure: bool = True) -> Precision:
    """``auto``: bf16 on a CPU with native bfloat16; fp32 elsewhere (with TF32 matmuls on GPUs).

    On GPUs at DCGAN sizes TF32 measured faster than bf16, so fp32+TF32 is the GPU default.
    With ``configure`` a CUDA device also switches on TF32 and cudnn.benchmark for the rest of
    the process (GPU_TRAINING_SETTINGS); ``configure=False`` only resolves the name. A Trainer
    resolves without configuring and holds the settings only while it runs (Trainer.backend).
    """
    if name == "auto":
        name = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bfloat16; use --precision fp32")
    if configure:
        set_backend_settings(training_settings(device))
    return Precision(name, device.type)
