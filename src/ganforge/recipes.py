"""Named presets of training options, applied before a config file and command-line overrides.

``classic`` is the original DCGAN set-up (the defaults). ``stable`` gathers remedies against
mode collapse and vanishing or exploding gradients; it is a candidate under measurement (see
docs/stability.md) and becomes the default once it beats ``classic`` on the benchmarks.
"""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict[str, object]] = {
    "classic": {},
    "stable": {
        "loss.d": "hinge",
        "loss.g": "hinge",
        "model.d_norm": "none",
        "model.d_spectral_norm": True,
        "train.ema_kimg": 10.0,
        "g_optim.lr": 2e-4,
        "d_optim.lr": 2e-4,
    },
}


def recipe_overrides(name: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of a recipe."""
    try:
        return list(RECIPES[name].items())
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
