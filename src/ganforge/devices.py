"""The device to run on, and what this machine's CPU can do (for choosing a numeric precision).

Kept outside :mod:`ganforge.training` so that sampling and metrics use them without importing
training; :mod:`ganforge.training.runtime` re-exports them.
"""
from __future__ import annotations

import contextlib
import functools
import platform
import re

import torch

from .errors import ConfigError


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


# CPU flags (Linux /proc/cpuinfo names, which torch.cpu.get_capabilities() also uses) that mean the
# CPU computes bfloat16 natively. AVX-512 alone is not enough: Skylake to Ice Lake have AVX-512 but
# only emulate bfloat16 (oneDNN converts to float32), and there bf16 autocast is slower than float32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

_CPUINFO = "/proc/cpuinfo"


def _read_cpuinfo() -> str | None:
    try:
        with open(_CPUINFO, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cpuinfo_field(cpuinfo: str, field: str) -> str | None:
    """The value of the first ``field : value`` line (cpuinfo repeats each field once per core)."""
    match = re.search(rf"^{re.escape(field)}\s*:\s*(.*)$", cpuinfo, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


@functools.lru_cache(maxsize=None)
def _host_cpu_flags() -> frozenset[str] | None:
    """This machine's CPU flags, or None when no reliable source answers.

    Linux: the ``flags`` line of /proc/cpuinfo (it lists what the CPU has *and* the kernel enabled,
    which matters for AMX). Elsewhere: ``torch.cpu.get_capabilities()`` (public in torch 2.13;
    cpuid-based), whose keys for these features have the same names.
    """
    cpuinfo = _read_cpuinfo()
    if cpuinfo is not None:
        flags = _cpuinfo_field(cpuinfo, "flags")
        if flags is not None:
            return frozenset(flags.split())
    get_capabilities = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get_capabilities is not None:
        try:
            return frozenset(k for k, v in get_capabilities().items() if v is True)
        except Exception:  # a failing probe means "unknown", never a crash at start-up
            return None
    return None


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """CPU feature flags: from ``cpuinfo`` (text in /proc/cpuinfo's format) when given, else this machine's.

    None when they cannot be determined (then nothing is assumed to be supported).
    """
    if cpuinfo is None:
        return _host_cpu_flags()
    flags = _cpuinfo_field(cpuinfo, "flags")
    return frozenset(flags.split()) if flags is not None else None


def native_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """Which of NATIVE_BF16_FLAGS the CPU has (``cpuinfo``: as for :func:`cpu_flags`)."""
    flags = cpu_flags(cpuinfo) or frozenset()
    return tuple(f for f in NATIVE_BF16_FLAGS if f in flags)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off.

    False on CPUs that only emulate it (AVX-512 without AVX512-BF16, e.g. Skylake to Ice Lake), on
    AVX2-only CPUs, on other architectures, and whenever the flags cannot be read.
    """
    return bool(native_bf16_flags(cpuinfo))


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name, for benchmark tables (e.g. 'Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz')."""
    text = cpuinfo if cpuinfo is not None else _read_cpuinfo()
    if text:
        for field in ("model name", "Model Name", "Processor", "cpu model"):  # x86, some ARM, MIPS
            name = _cpuinfo_field(text, field)
            if name:
                return " ".join(name.split())
    if cpuinfo is None:
        get_capabilities = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
        try:
            name = get_capabilities().get("cpu_name") if get_capabilities else None
        except Exception:
            name = None
        if name:
            return str(name)
    return platform.processor() or platform.machine() or "unknown CPU"


@contextlib.contextmanager
def exact_float32(device: torch.device):
    """No autocast and, on CUDA, no TF32 convolutions or matmuls while inside: feature networks measure in
    exact float32 on any device, whatever a training run has switched on."""
    with torch.autocast(device_type=device.type, enabled=False):
        if device.type != "cuda":
            yield
            return
        flags = [torch.backends.cudnn, torch.backends.cuda.matmul]
        try:
            saved = [f.allow_tf32 for f in flags]
        except RuntimeError:  # precision set through a newer API in a mixed way: leave it alone
            yield
            return
        try:
            for f in flags:
                f.allow_tf32 = False
            yield
        finally:
            for f, value in zip(flags, saved, strict=True):
                f.allow_tf32 = value
