"""Device and numeric precision choices."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA GPU if present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """How the forward passes run: plain float32 or bfloat16 autocast."""

    name: str  # "fp32" | "bf16"
    device_type: str

    def autocast(self):
        if self.name == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a CPU with native bfloat16; fp32 elsewhere (with TF32 matmuls on GPUs).

    On GPUs at DCGAN sizes TF32 measured faster than bf16, so fp32+TF32 is the GPU default.
    """
    if name == "auto":
        name = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bfloat16; use --precision fp32")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return Precision(name, device.type)
