import pytest
import torch

from ganforge import devices  # where CPU detection lives (runtime re-exports it): patch it there
from ganforge.training.runtime import (
    backend_settings,
    cpu_flags,
    cpu_has_native_bf16,
    cpu_name,
    get_backend_settings,
    native_bf16_flags,
    resolve_precision,
)


def cpuinfo(model: str, flags: str, cores: int = 2) -> str:
    """Text in /proc/cpuinfo's format: one block per logical core."""
    block = (
        "processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: {model}\n"
        "flags\t\t: {flags}\nbogomips\t: 4000.00\n\n"
    )
    return "".join(block.format(i=i, model=model, flags=flags) for i in range(cores))


BASE = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c"
AVX512 = BASE + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni"
SKYLAKE = cpuinfo("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", AVX512)  # emulated bf16 only
ICE_LAKE = cpuinfo("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", AVX512 + " avx512vbmi avx512_vbmi2 gfni")
SAPPHIRE_RAPIDS = cpuinfo("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
                          AVX512 + " avx512_bf16 amx_bf16 amx_tile amx_int8")
AMX_ONLY = cpuinfo("some AMX CPU", AVX512 + " amx_bf16 amx_tile")
EPYC_ZEN4 = cpuinfo("AMD EPYC 9654 96-Core Processor", AVX512 + " avx512_bf16")
AVX2_ONLY = cpuinfo("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", BASE)
ARM = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes bf16 i8mm\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("text", [SKYLAKE, ICE_LAKE, AVX2_ONLY, ARM, ""])
def test_no_native_bf16(text):
    assert not cpu_has_native_bf16(text)
    assert native_bf16_flags(text) == ()


@pytest.mark.parametrize("text,flags", [
    (SAPPHIRE_RAPIDS, ("avx512_bf16", "amx_bf16")),
    (AMX_ONLY, ("amx_bf16",)),
    (EPYC_ZEN4, ("avx512_bf16",)),
])
def test_native_bf16(text, flags):
    assert cpu_has_native_bf16(text)
    assert native_bf16_flags(text) == flags


def test_cpu_flags_parsing():
    assert "avx512f" in cpu_flags(SKYLAKE) and "avx512_bf16" not in cpu_flags(SKYLAKE)
    assert cpu_flags(ARM) is None  # no x86 flags line: unknown, not "none"


def host_flags(monkeypatch, text):
    monkeypatch.setattr(devices, "_host_cpu_flags", lambda: cpu_flags(text))


@pytest.mark.parametrize("text,expected", [
    (SKYLAKE, "fp32"), (ICE_LAKE, "fp32"), (AVX2_ONLY, "fp32"), (ARM, "fp32"),
    (SAPPHIRE_RAPIDS, "bf16"), (AMX_ONLY, "bf16"), (EPYC_ZEN4, "bf16"),
])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, text, expected):
    host_flags(monkeypatch, text)
    assert resolve_precision("auto", torch.device("cpu")).name == expected
    assert resolve_precision("fp32", torch.device("cpu")).name == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")).name == "bf16"  # explicit choice is kept


def test_unknown_flags_mean_fp32(monkeypatch):
    monkeypatch.setattr(devices, "_host_cpu_flags", lambda: None)
    assert not cpu_has_native_bf16()
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"


def test_host_detection_falls_back_to_torch_capabilities(monkeypatch):
    monkeypatch.setattr(devices, "_read_cpuinfo", lambda: None)
    flags = devices._host_cpu_flags.__wrapped__()  # uncached
    if hasattr(torch.cpu, "get_capabilities"):
        assert isinstance(flags, frozenset)
    else:
        assert flags is None


def test_host_detection_runs():
    assert isinstance(cpu_has_native_bf16(), bool)
    assert isinstance(cpu_name(), str) and cpu_name()


def test_cpu_name():
    assert cpu_name(SAPPHIRE_RAPIDS) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert cpu_name(EPYC_ZEN4) == "AMD EPYC 9654 96-Core Processor"
    assert cpu_name(ARM)  # no model name line: falls back to platform, never empty


def test_backend_settings_restores_what_a_cuda_run_sets():
    before = get_backend_settings()
    with backend_settings():
        # a CUDA training run switches TF32 and the cuDNN autotuner on (no GPU needed to set them)
        resolve_precision("fp32", torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
    assert get_backend_settings() == before


def test_backend_settings_overrides_and_restores_matmul_precision():
    before = get_backend_settings()
    with backend_settings(matmul_allow_tf32=False, cudnn_benchmark=False, float32_matmul_precision="medium"):
        assert torch.get_float32_matmul_precision() == "medium"
        assert not torch.backends.cudnn.benchmark
    assert get_backend_settings() == before
    with pytest.raises(RuntimeError), backend_settings():
        torch.backends.cudnn.benchmark = not before["cudnn_benchmark"]
        raise RuntimeError
    assert get_backend_settings() == before
    with pytest.raises(ValueError):
        with backend_settings(tf32=True):
            pass


def test_resolve_precision_configure_false_leaves_settings():
    with backend_settings(matmul_allow_tf32=False, cudnn_benchmark=False):
        resolve_precision("fp32", torch.device("cuda"), configure=False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
        assert resolve_precision("fp32", torch.device("cpu")).name == "fp32"
        assert not torch.backends.cudnn.benchmark  # the CPU never touches them
