"""Named presets of training options, applied before a config file and command-line overrides.

``classic`` is the original DCGAN set-up (the ``Config`` defaults). ``stable`` adds the remedies
that measured better on the benchmarks in docs/stability.md (2-D mixtures, Fashion-MNIST): an R1
penalty on D (lazy, every 4 D steps), a minibatch standard-deviation feature in D, a moving
average of G's weights for sampling, and batches of 64 (more updates per second on a CPU).
Rejected on the same benchmarks: hinge loss + spectral norm (lost modes on the mixtures), D
without BatchNorm (worse images), a 4x faster D learning rate (collapsed to 6 of 10 classes).
"""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict[str, object]] = {
    "classic": {},
    "stable": {
        "reg.r1_gamma": 1.0,
        "reg.r_interval": 4,
        "model.d_mbstd": True,
        "train.ema_kimg": 10.0,
        "train.batch_size": 64,
    },
}
DEFAULT_RECIPE = "stable"  # what `ganforge train` applies when no --recipe is given


def recipe_overrides(name: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of a recipe."""
    try:
        return list(RECIPES[name].items())
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
