"""The typed training configuration.

One :class:`Config` holds every option. It is built from defaults, then an optional YAML
file, then command-line overrides (``section.key=value``), in that order. Unknown keys
are rejected with a suggestion, values are type-checked, and the resolved object is saved
as ``config.json`` in the run folder so a run can be resumed or reproduced exactly.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    source: str = "builtin:shapes"  # folder, .zip, .npz/.npy, a named set (mnist, fashion-mnist, cifar10) or builtin:NAME
    resolution: int | None = None  # square training size, power of two 16..256; None: from the data
    channels: int | None = None  # convert every image to this many channels; None: keep (must agree)
    fit: str = "auto"  # auto | pad | crop | resize: how images are brought to the resolution
    max_bad_fraction: float = 0.1  # stop if more than this share of files cannot be read
    limit: int | None = None  # use only the first N images
    cache_dir: str | None = None  # where named data sets are downloaded; None: $GANFORGE_CACHE or ~/.cache/ganforge


@dataclass
class ModelConfig:
    arch: str = "dcgan"
    z_dim: int = 100  # length of the noise vector
    g_width: int = 64  # G's base width (channels of its last hidden layer)
    d_width: int = 64  # D's base width (channels of its first layer)
    g_norm: str = "batch"  # batch | group | none
    d_norm: str = "batch"  # batch | group | none (differential privacy needs group or none)
    d_spectral_norm: bool = False  # spectral normalisation of D's layers
    g_spectral_norm: bool = False  # spectral normalisation of G's layers
    d_dropout: float = 0.0  # dropout after each hidden D layer
    d_mbstd: bool = False  # minibatch standard-deviation feature before D's last layer
    conditional: bool = False  # class-conditional G(z, c) and projection D(x, c); needs labelled data


@dataclass
class LossConfig:
    d: str = "minimax"  # D's loss: minimax | wasserstein | hinge | least_squares | relativistic
    g: str = "nonsaturating"  # G's loss, fitting D's: nonsaturating | saturating (minimax); wasserstein;
    #                           hinge; least_squares; relativistic (--loss NAME sets both)


@dataclass
class RegularizerConfig:
    r1_gamma: float = 0.0  # R1: gamma/2 * E|grad_x D(x)|^2 on real images (0: off)
    r2_gamma: float = 0.0  # R2: the same on generated images
    r_interval: int = 1  # lazy regularisation: apply R1/R2 every k D steps, scaled by k
    gp_weight: float = 0.0  # WGAN-GP gradient penalty weight (0: off)
    clip_weights: float = 0.0  # WGAN weight clipping of D's parameters to [-c, c] (0: off)
    g_clip_norm: float = 0.0  # clip G's gradient norm (0: off)
    d_clip_norm: float = 0.0  # clip D's gradient norm (0: off)
    label_smoothing: float = 0.0  # one-sided: D's real target 1 - s (minimax loss)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's real and fake inputs
    augment: str = ""  # differentiable augmentation for D's inputs: comma list of translation, cutout, colour
    augment_p: float | None = None  # probability of each augmentation; None: 1, or 0 at the start with ada
    ada: bool = False  # adapt the augmentation probability to D's overfitting (r_t = E[sign margin(x_real)])
    ada_target: float = 0.6  # r_t that ada aims at (the ADA reference's value)
    ada_kimg: float = 100.0  # thousands of images for p to move from 0 to 1 (reference 500; CPU runs are short)


@dataclass
class MonitorConfig:
    rollback: bool = True  # on NaN/Inf or exploding losses: reload the last good checkpoint, lower the lr
    max_rollbacks: int = 3  # then stop with a clear message
    rollback_lr_factor: float = 0.5  # learning rates are multiplied by this at each rollback
    loss_limit: float = 1e4  # |loss| above this counts as divergence
    collapse_ratio: float = 0.3  # diversity below this share of its running level raises a collapse warning
    stop_on_collapse: bool = False  # stop training (after saving) when collapse is detected


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 2e-4
    beta1: float = 0.5  # Adam
    beta2: float = 0.999  # Adam
    momentum: float = 0.9  # SGD
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    batch_size: int = 128
    d_steps: int = 1  # D updates per G update
    ema_kimg: float = 0.0  # half-life of the moving average of G's weights, in thousands of images; 0: off
    max_steps: int | None = None  # G updates; training stops at the first limit reached
    max_epochs: float | None = None  # passes over the data (D's real batches); 20 when no limit is set
    max_time: str | None = None  # wall-clock budget, e.g. "90s", "10m", "2h"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 on CPUs with native bfloat16, fp32/TF32 on GPUs)
    log_every: int = 50  # steps between log lines (the only host synchronisations)
    sample_every: int = 500  # steps between sample grids from fixed noise (0: only at the end)
    checkpoint_every: int = 1000  # steps between checkpoints
    checkpoint_minutes: float = 10.0  # also checkpoint when this much time has passed since the last one
    keep_checkpoints: int = 2  # newest complete checkpoints kept on disk (at least 2, whatever is set)
    grid_size: int = 64  # images in each sample grid
    eval_every: int = 0  # steps between evaluations against the training data (0: never)
    eval_metrics: str = "fd"  # comma list (fd, kid, is, pr, dc, modes); the first one picks the best weights
    eval_n: int = 5000  # generated images per evaluation (and at most this many real ones)
    eval_extractor: str = "auto"  # auto | inception | domain
    tensorboard: bool = False  # also write TensorBoard logs (needs the tensorboard extra)
    progress: bool = True  # show a progress bar


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegularizerConfig = field(default_factory=RegularizerConfig)
    g_optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    d_optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write config.json durably: a kill mid-write leaves the old file, never an empty one."""
        from .durable import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        cfg = cls()
        apply_mapping(cfg, data)
        return cfg

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a YAML (or JSON) file; sections and keys as in :class:`Config`."""
        return cls.from_dict(load_yaml_mapping(path))


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A config file's {section: {key: value}} mapping, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- overrides and checks


def _suggest(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_keys(obj: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += _all_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def apply_mapping(cfg: Config, data: dict[str, Any]) -> None:
    """Set the values of a nested mapping {section: {key: value}} on ``cfg``."""
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value)


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set ``section.key`` to ``value`` (coerced to the field's type)."""
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"option {dotted!r} must look like section.key{_suggest(dotted, _all_keys(cfg))}")
    section_name, key = parts
    sections = {f.name for f in dataclasses.fields(cfg)}
    if section_name not in sections:
        raise ConfigError(f"unknown config section {section_name!r}{_suggest(section_name, sections)}")
    section = getattr(cfg, section_name)
    fields = {f.name: f for f in dataclasses.fields(section)}
    if key not in fields:
        full = [f"{section_name}.{k}" for k in fields] + _all_keys(cfg)
        raise ConfigError(f"unknown option {dotted!r}{_suggest(dotted, full)}")
    hint = typing.get_type_hints(type(section))[key]
    setattr(section, key, _coerce(dotted, value, hint))


def _coerce(name: str, value: Any, hint: Any) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    nullable = type(None) in allowed
    if value is None or (nullable and isinstance(value, str) and value.lower() in ("none", "null")):
        if nullable:
            return None
        raise ConfigError(f"{name} cannot be empty")
    for typ in allowed:
        if typ is type(None):
            continue
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            continue
        if typ is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value.strip()):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            continue
        if typ is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    continue
            continue
        if typ is str:
            return str(value)
    names = " or ".join(t.__name__ for t in allowed if t is not type(None))
    raise ConfigError(f"{name} must be {names}, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` -> (key, value); the value is read as YAML (numbers, true, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text: str | None) -> float | None:
    """"90s", "10m", "1.5h", "600" -> seconds."""
    if text is None:
        return None
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"cannot read time budget {text!r}; use e.g. 90s, 10m or 2h")
    number, unit = match.groups()
    return float(number) * _UNIT_SECONDS[unit.lower() if unit else None]


_CHOICES = {
    "data.fit": ("auto", "pad", "crop", "resize"),
    "model.g_norm": ("batch", "group", "none"),
    "model.d_norm": ("batch", "group", "none"),
    "g_optim.name": ("adam", "sgd"),
    "d_optim.name": ("adam", "sgd"),
    "train.precision": ("auto", "fp32", "bf16"),
    "train.eval_extractor": ("auto", "inception", "domain"),
}

DEFAULT_MAX_EPOCHS = 20.0


def _check_losses(cfg: Config) -> None:
    """Loss pairs that optimise one game, Wasserstein with a Lipschitz constraint, ADA with a signal."""
    from .losses.adversarial import ADA_LOSSES, check_loss_pair

    problem = check_loss_pair(cfg.loss.d, cfg.loss.g)
    if problem:
        raise ConfigError(problem)
    r = cfg.reg
    if cfg.loss.d == "wasserstein" and not (r.gp_weight > 0 or r.clip_weights > 0 or cfg.model.d_spectral_norm):
        raise ConfigError("the Wasserstein loss needs a Lipschitz constraint on D: set reg.gp_weight=10 (WGAN-GP), "
                          "reg.clip_weights=0.01 (WGAN) or model.d_spectral_norm=true")
    if r.ada and cfg.loss.d not in ADA_LOSSES:
        raise ConfigError(f"reg.ada cannot be used with loss.d={cfg.loss.d}: a {cfg.loss.d} D has no decision "
                          "threshold for the overfitting signal; use a fixed reg.augment_p instead")


def validate(cfg: Config) -> Config:
    """Check values that types alone do not catch; fill in the default stopping rule."""
    for dotted, choices in _CHOICES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}, got {value!r}{_suggest(str(value), choices)}")
    from .losses import D_LOSSES, G_LOSSES
    from .models import list_models

    for dotted, value, choices in (
        ("loss.d", cfg.loss.d, D_LOSSES),
        ("loss.g", cfg.loss.g, G_LOSSES),
        ("model.arch", cfg.model.arch, list_models(data="images")),
    ):
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}, got {value!r}{_suggest(value, choices)}")
    t = cfg.train
    positive = {
        "train.batch_size": t.batch_size, "train.d_steps": t.d_steps, "train.log_every": t.log_every,
        "train.checkpoint_every": t.checkpoint_every, "train.keep_checkpoints": t.keep_checkpoints,
        "train.grid_size": t.grid_size, "model.z_dim": cfg.model.z_dim, "model.g_width": cfg.model.g_width,
        "model.d_width": cfg.model.d_width, "g_optim.lr": cfg.g_optim.lr, "d_optim.lr": cfg.d_optim.lr,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    r = cfg.reg
    for name in ("r1_gamma", "r2_gamma", "gp_weight", "clip_weights", "g_clip_norm", "d_clip_norm",
                 "label_smoothing", "instance_noise", "ada_kimg"):
        if getattr(r, name) < 0:
            raise ConfigError(f"reg.{name} must be >= 0")
    if r.r_interval < 1:
        raise ConfigError("reg.r_interval must be >= 1")
    if (r.augment_p is not None and not 0 <= r.augment_p <= 1) or not 0 <= r.label_smoothing < 1 \
            or not 0 <= cfg.model.d_dropout < 1:
        raise ConfigError("reg.augment_p must be in [0, 1]; reg.label_smoothing and model.d_dropout in [0, 1)")
    augments = {"translation", "cutout", "colour", "color"}
    for part in filter(None, (a.strip() for a in r.augment.split(","))):
        if part not in augments:
            raise ConfigError(f"unknown augmentation {part!r}; choose from translation, cutout, colour"
                              f"{_suggest(part, augments)}")
    if r.ada and not r.augment:
        raise ConfigError("reg.ada adapts the augmentation probability: also set reg.augment")
    _check_losses(cfg)
    m = cfg.monitor
    if m.max_rollbacks < 0 or not 0 < m.rollback_lr_factor <= 1 or m.loss_limit <= 0 or not 0 <= m.collapse_ratio < 1:
        raise ConfigError("monitor: max_rollbacks >= 0, 0 < rollback_lr_factor <= 1, loss_limit > 0, "
                          "0 <= collapse_ratio < 1")
    if t.eval_every < 0 or t.eval_n < 2:
        raise ConfigError("train.eval_every must be >= 0 and train.eval_n >= 2")
    from .metrics.evaluate import parse_metrics

    try:
        parse_metrics(t.eval_metrics)
    except Exception as exc:  # a GanforgeError with the list of metric names
        raise ConfigError(f"train.eval_metrics: {exc}") from None
    if "memorisation" in parse_metrics(t.eval_metrics):
        raise ConfigError("train.eval_metrics: memorisation needs held-out images; use ganforge eval --real")
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
    return cfg


# Options that may change when a run is resumed: they do not alter the training maths (the
# precision does, a little, but a run moved to another device may need another one; with
# "auto" a resumed run keeps the precision it was resolved to).
RESUMABLE_KEYS = frozenset(
    f"train.{k}"
    for k in (
        "max_steps", "max_epochs", "max_time", "device", "precision", "log_every", "sample_every",
        "checkpoint_every", "checkpoint_minutes", "keep_checkpoints", "grid_size", "tensorboard", "progress",
        "eval_every", "eval_metrics", "eval_n", "eval_extractor",
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
