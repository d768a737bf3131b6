"""Building a run's configuration: recipe, YAML file and overrides, or a saved run to resume.

What ``ganforge train`` resolves before it trains, as library calls::

    cfg = build_config("stable", "my.yaml", [("train.max_steps", 1000)])
    cfg = resolve_config(resume_dir="runs/00003-mnist", overrides=[("train.max_steps", 20000)])
    plan = plan_run(overrides=[("data.source", "mnist")])  # config, run folder, resume flag

Overrides are ``(section.key, value)`` pairs (:func:`ganforge.config.parse_override` reads
``section.key=value`` text), applied in order after the recipe and the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, NamedTuple

from .config import Config, apply_mapping, load_yaml_mapping, set_value
from .validation import RESUMABLE_KEYS, validate
from .errors import ConfigError, GanforgeError
from .recipes import DEFAULT_RECIPE, recipe_overrides

Overrides = Iterable[tuple[str, object]]


def build_config(recipe: str | None = None, config_file: str | os.PathLike | None = None,
                 overrides: Overrides = ()) -> Config:
    """Defaults, then the recipe (default :data:`~ganforge.recipes.DEFAULT_RECIPE`, or ``dp`` when the
    overrides ask for private training), then the YAML file, then the overrides; validated. A recipe's
    privacy budget (``dp``'s epsilon 10) applies only when neither the file nor the overrides set
    ``dp.noise`` or ``dp.epsilon``: a noise multiplier given alone trains without a hidden budget."""
    cfg = Config()
    overrides = list(overrides)
    if recipe is None and any(key in ("dp.epsilon", "dp.noise") and value is not None for key, value in overrides):
        recipe = "dp"  # private training needs a D the default recipe does not have (no minibatch statistics, ...)
    recipe_budget = None
    for key, value in recipe_overrides(recipe or DEFAULT_RECIPE):
        if key == "dp.epsilon":  # a recipe's budget applies only when nothing else sets the noise or a budget
            recipe_budget = value
            continue
        set_value(cfg, key, value)
    if config_file:
        apply_mapping(cfg, load_yaml_mapping(config_file))
    for key, value in overrides:
        set_value(cfg, key, value)
    if recipe_budget is not None and cfg.dp.epsilon is None and cfg.dp.noise is None:
        cfg.dp.epsilon = recipe_budget
    return validate(cfg)


def resume_config(run_dir: str | os.PathLike, overrides: Overrides = ()) -> Config:
    """A run's saved config.json with the overrides applied; validated.

    Only options in :data:`~ganforge.config.RESUMABLE_KEYS` (stopping limits, device, logging,
    evaluation, monitoring) may change: an override that changes any other option raises
    :class:`~ganforge.errors.ConfigError`, as it would change the training itself.
    """
    saved = Path(run_dir) / "config.json"
    if not saved.is_file():
        raise GanforgeError(f"cannot resume: {saved} not found")
    cfg = Config.load(saved)
    _apply_resume_overrides(cfg, overrides)
    return validate(cfg)


def _apply_resume_overrides(cfg: Config, overrides: Overrides) -> None:
    for key, value in overrides:
        before = cfg.to_dict()
        set_value(cfg, key, value)
        if cfg.to_dict() != before and key not in RESUMABLE_KEYS:
            raise ConfigError(f"{key} cannot change when resuming (it would change the training itself)")


def resolve_config(recipe: str | None = None, config_file: str | os.PathLike | None = None,
                   overrides: Overrides = (), resume_dir: str | os.PathLike | None = None) -> Config:
    """The configuration ``ganforge train`` would use: :func:`resume_config` of ``resume_dir``
    when given (a recipe or config file cannot be combined with it), else :func:`build_config`."""
    if resume_dir is None:
        return build_config(recipe, config_file, overrides)
    saved = Path(resume_dir) / "config.json"
    if not saved.is_file():
        raise GanforgeError(f"cannot resume: {saved} not found")
    if config_file or recipe:
        raise ConfigError("--config and --recipe cannot be combined with --resume (the run's config.json is used)")
    return resume_config(resume_dir, overrides)


def next_run_dir(root: str | os.PathLike, source: str) -> Path:
    """The next numbered run folder under ``root`` for a data source: runs/00000-shapes, runs/00001-mnist, ..."""
    root = Path(root)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(source.split(":")[-1]).stem).strip("-") or "run"
    numbers = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{name}"


class RunPlan(NamedTuple):
    """What to train and where: ``cfg, run_dir, resume = plan_run(...)``."""

    config: Config
    run_dir: Path
    resume: bool


def plan_run(recipe: str | None = None, config_file: str | os.PathLike | None = None, overrides: Overrides = (),
             out: str | os.PathLike | None = None, resume_dir: str | os.PathLike | None = None,
             runs_root: str | os.PathLike = "runs") -> RunPlan:
    """The configuration and run folder of ``ganforge train``.

    Resuming uses ``resume_dir`` itself. A new run goes to ``out``, or to the next numbered
    folder under ``runs_root``; a folder that already holds checkpoints is refused.
    """
    overrides = list(overrides)
    cfg = resolve_config(recipe, config_file, overrides, resume_dir)
    if resume_dir is not None:
        return RunPlan(cfg, Path(resume_dir), True)
    run_dir = Path(out) if out else next_run_dir(runs_root, cfg.data.source)
    if (run_dir / "checkpoints").exists():
        raise GanforgeError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick another --out")
    return RunPlan(cfg, run_dir, False)


def describe_plan(plan: RunPlan) -> str:
    """The resolved configuration as YAML, headed by the run folder, device and precision (``--dry-run``)."""
    from .training.runtime import resolve_device, resolve_precision

    cfg = plan.config
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device, configure=False).name
    return (f"# run folder: {plan.run_dir}{' (resume)' if plan.resume else ''}\n"
            f"# device: {device}; precision: {precision}"
            + ("" if cfg.data.resolution else "; resolution: from the data") + "\n"
            + cfg.to_yaml())
