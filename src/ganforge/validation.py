"""Checks of a whole configuration beyond types, and which options may change on resume.

:func:`validate` runs before any data is loaded, so a wrong option costs a second, not a
download; each architecture checks its own ``model`` options (its config's ``check()``).
"""
from __future__ import annotations

from typing import Any

from .choices import CONFIG_CHOICES
from .config import Config, MonitorConfig, parse_duration, suggest
from .errors import ConfigError
from .extensions import check_sections
from .models import check_section, list_models

DEFAULT_MAX_EPOCHS = 20.0


def _check_classifier(cfg: Config) -> None:
    """The AC-GAN term and D's classifier head come together, on a class-conditional model."""
    head, weight = getattr(cfg.model, "d_classifier", False), cfg.reg.class_weight > 0
    if weight and not head:
        has = "set model.d_classifier=true" if hasattr(cfg.model, "d_classifier") else \
            f"the {cfg.model.arch} D has none (dcgan has one)"
        raise ConfigError(f"reg.class_weight trains D's classifier head: {has}")
    if head and not weight:
        raise ConfigError("model.d_classifier adds a head that only reg.class_weight trains: set it above 0")
    if head and not cfg.model.conditional:
        raise ConfigError("model.d_classifier predicts classes: it needs labels (model.conditional=true)")


def _check_losses(cfg: Config) -> None:
    """Loss pairs that optimise one game, Wasserstein with a Lipschitz constraint, ADA with a signal."""
    from .losses.adversarial import ADA_LOSSES, check_loss_pair

    problem = check_loss_pair(cfg.loss.d, cfg.loss.g)
    if problem:
        raise ConfigError(problem)
    r = cfg.reg
    if cfg.loss.d == "wasserstein" and not (r.gp_weight > 0 or r.clip_weights > 0 
                                          or getattr(cfg.model, "d_spectral_norm", False)):
        raise ConfigError("the Wasserstein loss needs a Lipschitz constraint on D: set reg.gp_weight=10 (WGAN-GP), "
                          "reg.clip_weights=0.01 (WGAN) or model.d_spectral_norm=true")
    if r.ada and cfg.loss.d not in ADA_LOSSES:
        raise ConfigError(f"reg.ada cannot be used with loss.d={cfg.loss.d}: a {cfg.loss.d} D has no decision "
                          "threshold for the overfitting signal; use a fixed reg.augment_p instead")


def _check_schedule(cfg: Config) -> None:
    sc = cfg.schedule
    ends = {"lr_end_factor": sc.lr_end_factor, "beta2_end": sc.beta2_end, "gamma_end_factor": sc.gamma_end_factor,
            "ema_kimg_end": sc.ema_kimg_end, "augment_p_end": sc.augment_p_end}
    chosen = [name for name, value in ends.items() if value is not None]
    if sc.shape == "none":
        if chosen:
            raise ConfigError(f"schedule.{chosen[0]} needs a schedule.shape (linear or cosine) and schedule.kimg")
        return
    if sc.kimg <= 0:
        raise ConfigError(f"schedule.shape={sc.shape} needs schedule.kimg > 0: the ramp's length in thousands of images")
    if any(value < 0 for value in ends.values() if value is not None):
        raise ConfigError("schedule end values must be >= 0")
    if sc.beta2_end is not None and (sc.beta2_end >= 1 or "sgd" in (cfg.g_optim.name, cfg.d_optim.name)):
        raise ConfigError("schedule.beta2_end is Adam's beta2: it needs adam for both networks and a value below 1")
    if sc.augment_p_end is not None and (sc.augment_p_end > 1 or not cfg.reg.augment or cfg.reg.ada):
        raise ConfigError("schedule.augment_p_end schedules a fixed augmentation probability in [0, 1]: it needs "
                          "reg.augment and cannot be combined with reg.ada")
    if sc.gamma_end_factor is not None and not (cfg.reg.r1_gamma > 0 or cfg.reg.r2_gamma > 0):
        raise ConfigError("schedule.gamma_end_factor scales R1/R2: set reg.r1_gamma or reg.r2_gamma")


def validate(cfg: Config) -> Config:
    """Check values that types alone do not catch; fill in the default stopping rule."""
    for dotted, choices in CONFIG_CHOICES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}, got {value!r}{suggest(str(value), choices)}")
    from .losses import D_LOSSES, G_LOSSES

    for dotted, value, choices in (
        ("loss.d", cfg.loss.d, D_LOSSES),
        ("loss.g", cfg.loss.g, G_LOSSES),
        ("model.arch", cfg.model.arch, list_models(data="images")),
    ):
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}, got {value!r}{suggest(value, choices)}")
    check_section(cfg.model)  # the architecture's own checks of its options
    t = cfg.train
    positive = {
        "train.batch_size": t.batch_size, "train.d_steps": t.d_steps, "train.log_every": t.log_every,
        "train.checkpoint_every": t.checkpoint_every, "train.keep_checkpoints": t.keep_checkpoints,
        "train.grid_size": t.grid_size, "g_optim.lr": cfg.g_optim.lr, "d_optim.lr": cfg.d_optim.lr,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    r = cfg.reg
    for name in ("r1_gamma", "r2_gamma", "gp_weight", "clip_weights", "g_clip_norm", "d_clip_norm",
                 "label_smoothing", "instance_noise", "ada_kimg", "mode_seeking", "class_weight"):
        if getattr(r, name) < 0:
            raise ConfigError(f"reg.{name} must be >= 0")
    if r.r_interval < 1:
        raise ConfigError("reg.r_interval must be >= 1")
    if r.mode_seeking > 0 and t.batch_size < 2:
        raise ConfigError("reg.mode_seeking compares pairs of generated images: it needs train.batch_size >= 2")
    _check_classifier(cfg)
    if (r.augment_p is not None and not 0 <= r.augment_p <= 1) or not 0 <= r.label_smoothing < 1:
        raise ConfigError("reg.augment_p must be in [0, 1] and reg.label_smoothing in [0, 1)")
    augments = {"translation", "cutout", "colour", "color"}
    for part in filter(None, (a.strip() for a in r.augment.split(","))):
        if part not in augments:
            raise ConfigError(f"unknown augmentation {part!r}; choose from translation, cutout, colour"
                              f"{suggest(part, augments)}")
    if r.ada and not r.augment:
        raise ConfigError("reg.ada adapts the augmentation probability: also set reg.augment")
    _check_losses(cfg)
    m = cfg.monitor
    if m.max_rollbacks < 0 or not 0 < m.rollback_lr_factor <= 1 or m.loss_limit <= 0 or not 0 <= m.collapse_ratio < 1:
        raise ConfigError("monitor: max_rollbacks >= 0, 0 < rollback_lr_factor <= 1, loss_limit > 0, "
                          "0 <= collapse_ratio < 1")
    _check_schedule(cfg)
    if r.pl_weight < 0 or r.pl_interval < 1 or r.pl_batch_shrink < 1 or not 0 < r.pl_decay <= 1:
        raise ConfigError("reg.pl_weight must be >= 0, reg.pl_interval and reg.pl_batch_shrink >= 1, "
                          "reg.pl_decay in (0, 1]")
    if t.ema_rampup < 0:
        raise ConfigError("train.ema_rampup must be >= 0 (0: no ramp-up)")
    if t.ema_kimg < 0:
        raise ConfigError("train.ema_kimg must be >= 0 (0 turns the average off)")
    if t.sample_every < 0:
        raise ConfigError("train.sample_every must be >= 0")
    if t.max_steps is not None and t.max_steps <= 0:
        raise ConfigError("train.max_steps must be positive")
    if t.max_epochs is not None and t.max_epochs <= 0:
        raise ConfigError("train.max_epochs must be positive")
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError("data.max_bad_fraction must be between 0 and 1")
    if parse_duration(t.max_time) is not None and parse_duration(t.max_time) <= 0:
        raise ConfigError("train.max_time must be positive")
    if t.max_steps is None and t.max_epochs is None and t.max_time is None:
        t.max_epochs = DEFAULT_MAX_EPOCHS
    # last: the checks registered by other packages (metrics: train.eval_*; dp: with epsilon alone, the noise is
    # planned for the stopping rule just filled in)
    check_sections(cfg)
    return cfg


# Options that may change when a run is resumed: they do not alter the training maths (the
# precision does, a little, but a run moved to another device may need another one; with
# "auto" a resumed run keeps the precision it was resolved to; compilation and the memory format
# change only the order of roundings).
RESUMABLE_KEYS = frozenset(
    f"train.{k}"
    for k in (
        "max_steps", "max_epochs", "max_time", "device", "precision", "compile", "channels_last", "log_every", "sample_every",
        "checkpoint_every", "checkpoint_minutes", "keep_checkpoints", "grid_size", "tensorboard", "progress",
        "eval_every", "eval_metrics", "eval_n", "eval_extractor", "eval_data",
    )
) | {"data.cache_dir"} | {f"monitor.{k}" for k in MonitorConfig.__dataclass_fields__}


def _flat(cfg: Config) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}


def check_resume_changes(saved: Config, new: Config) -> None:
    """Raise when ``new`` changes an option of the saved run that may not change on resume."""
    before, after = _flat(saved), _flat(new)
    changed = [key for key in after if after[key] != before.get(key) and key not in RESUMABLE_KEYS]
    if changed:
        details = ", ".join(f"{k} ({before.get(k)!r} -> {after[k]!r})" for k in changed[:3])
        raise ConfigError(f"cannot resume with changed options: {details}"
                          f"{' ...' if len(changed) > 3 else ''}; they would change the training itself "
                          "(start a new run instead)")
