"""Named presets of training options, applied before a config file and command-line overrides.

``classic`` is the original DCGAN set-up (the defaults). A ``stable`` recipe joins when a
combination of remedies is measured to beat ``classic`` on the benchmarks (docs/stability.md):
the first candidate (hinge loss + spectral norm in D + EMA of G) lost on the 2-D mixtures.
"""
from __future__ import annotations

from .errors import ConfigError

RECIPES: dict[str, dict[str, object]] = {
    "classic": {},
}
DEFAULT_RECIPE = "classic"  # what `ganforge train` applies when no --recipe is given


def recipe_overrides(name: str) -> list[tuple[str, object]]:
    """The (key, value) pairs of a recipe."""
    try:
        return list(RECIPES[name].items())
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None
