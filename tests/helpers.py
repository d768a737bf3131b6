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
