"""The metrics by name, and the checks of the configuration's evaluation options.

Apart from :mod:`.evaluate` (which computes them) so that validating a configuration needs no torch: this
module registers :func:`check_eval_options` with :func:`ganforge.extensions.register_check` when
``ganforge`` is imported, and validation runs it with the other sections' checks.
"""
from __future__ import annotations

from ..errors import ConfigError, GanforgeError
from ..extensions import register_check

# every metric, in the order the help lists them; evaluate.METRICS holds a function for each
METRIC_NAMES = ("fd", "kid", "is", "pr", "dc", "modes", "memorisation")
ALIASES = {"fid": "fd", "coverage": "dc", "density": "dc", "precision": "pr", "recall": "pr",
           "classes": "modes", "memorization": "memorisation", "inception_score": "is"}


def parse_metrics(text: str | list[str]) -> list[str]:
    """A comma list (or list) of metric names or aliases -> the metric names, each once, in order."""
    names = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in names:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in METRIC_NAMES:
            choices = ", ".join(list(METRIC_NAMES) + list(ALIASES))
            raise GanforgeError(f"unknown metric {raw!r}; choose from {choices}")
        if name not in out:
            out.append(name)
    return out


def check_eval_options(cfg) -> None:
    """train.eval_every, eval_n and eval_metrics: periodic evaluation compares with the training images."""
    t = cfg.train
    if t.eval_every < 0 or t.eval_n < 2:
        raise ConfigError("train.eval_every must be >= 0 and train.eval_n >= 2")
    try:
        metrics = parse_metrics(t.eval_metrics)
    except GanforgeError as exc:  # the list of metric names
        raise ConfigError(f"train.eval_metrics: {exc}") from None
    if "memorisation" in metrics:
        raise ConfigError("train.eval_metrics: memorisation needs held-out images; use ganforge eval --real")


register_check("train.eval", check_eval_options)
