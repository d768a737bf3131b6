"""Constants and helpers shared by tests (importable: tests/ is on the test path)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Options that make the DCGAN tiny; used by training and CLI tests.
TINY = [
    "model.z_dim=8", "model.g_width=8", "model.d_width=8",
    "train.batch_size=8", "train.log_every=2", "train.sample_every=0", "train.grid_size=4",
    "train.progress=false", "train.precision=fp32",
]


# Tiny settings of every registered architecture (model tests add resolution and channels).
TINY_MODELS = {
    "dcgan": dict(resolution=16, channels=2, z_dim=8, g_width=4, d_width=4),
    "mlp": dict(z_dim=2, g_width=16, d_width=16),
    "r3gan": dict(resolution=16, channels=2, z_dim=8, width=8, group_channels=4, blocks=1),
    "resnet": dict(resolution=16, channels=2, z_dim=8, g_width=8, d_width=4),
    # noise_mode="const": G is deterministic in eval mode (training draws fresh noise whatever it is)
    "stylegan2": dict(resolution=16, channels=2, z_dim=8, w_dim=8, channel_base=64, channel_max=8, mbstd_group=4,
                      d_map_layers=2, noise_mode="const"),
}


def shared_file(name: str) -> Path:
    """A file of the shared data folder, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def tiny_config(data: Path, *extra: str):
    """A validated Config for a tiny DCGAN on ``data``, with ``section.key=value`` overrides."""
    from ganforge.config import Config, parse_override, set_value
    from ganforge.validation import validate

    cfg = Config()
    for text in [f"data.source={data}", *TINY, *extra]:
        set_value(cfg, *parse_override(text))
    return validate(cfg)


def tiny_arch_config(data: Path, arch: str, *extra: str):
    """A validated Config for architecture ``arch`` at its tiny settings on ``data``, with overrides."""
    options = [f"model.{k}={v}" for k, v in TINY_MODELS[arch].items() if k not in ("resolution", "channels")]
    loop = [opt for opt in TINY if not opt.startswith("model.")]
    return tiny_config(data, f"model.arch={arch}", *options, *loop, *extra)
