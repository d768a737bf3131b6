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
from .models.registry import DATA_FIELDS, ARCHITECTURES, model_section, model_spec, switch_arch


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
    mode_seeking: float = 0.0  # MSGAN weight: G's loss + w / (|G(z1)-G(z2)| / |z1-z2|) over pairs of one class (0: off)
    class_weight: float = 0.0  # AC-GAN: D's classifier (model.d_classifier) learns real labels, G its asked-for class
    instance_noise: float = 0.0  # std of Gaussian noise added to D's real and fake inputs
    augment: str = ""  # differentiable augmentation for D's inputs: comma list of translation, cutout, colour
    augment_p: float | None = None  # probability of each augmentation; None: 1, or 0 at the start with ada
    ada: bool = False  # adapt the augmentation probability to D's overfitting (r_t = E[sign margin(x_real)])
    ada_target: float = 0.6  # r_t that ada aims at (the ADA reference's value)
    ada_kimg: float = 100.0  # thousands of images for p to move from 0 to 1 (reference 500; CPU runs are short)
    lazy_adjust: bool = False  # lazy R1/R2 (and path length): scale lr by k/(k+1), Adam betas to that power (StyleGAN2)
    pl_weight: float = 0.0  # StyleGAN2 path-length regularisation of G (0: off; needs G.mapping and G.synthesis)
    pl_interval: int = 4  # apply it every k G steps, scaled by k
    pl_batch_shrink: int = 2  # on batch_size / this many samples
    pl_decay: float = 0.01  # moving-average rate of the target path length


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
class ScheduleConfig:
    """Values that move with training progress (images seen by D): from the configured value at the
    start to the ``*_end`` value after ``kimg`` thousand images, then constant (R3GAN's burn-in)."""

    shape: str = "none"  # none | linear | cosine (half-cosine, as R3GAN)
    kimg: float = 0.0  # length of the ramp in thousands of real images
    lr_end_factor: float | None = None  # both learning rates end at this multiple of their start (None: constant)
    beta2_end: float | None = None  # Adam's beta2 of both networks at the end
    gamma_end_factor: float | None = None  # R1 and R2 gamma end at this multiple of their start
    ema_kimg_end: float | None = None  # the average's half-life at the end (train.ema_kimg at the start)
    augment_p_end: float | None = None  # augmentation probability at the end (a fixed schedule, not with ADA)


@dataclass
class TrainConfig:
    batch_size: int = 128
    d_steps: int = 1  # D updates per G update
    ema_kimg: float = 0.0  # half-life of the moving average of G's weights, in thousands of images; 0: off
    ema_rampup: float = 0.0  # >0: the half-life is at most this share of the images seen so far (StyleGAN2: 0.05)
    max_steps: int | None = None  # G updates; training stops at the first limit reached
    max_epochs: float | None = None  # passes over the data (D's real batches); 20 when no limit is set
    max_time: str | None = None  # wall-clock budget, e.g. "90s", "10m", "2h"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 on CPUs with native bfloat16, fp32/TF32 on GPUs)
    compile: str = "none"  # none | default | reduce-overhead (CUDA graphs) | max-autotune: torch.compile of G and D
    channels_last: bool = False  # images, G and D in channels-last memory format (faster convolutions on some devices)
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
    eval_data: str | None = None  # real images to evaluate against (None: the training data); DP runs need this
    tensorboard: bool = False  # also write TensorBoard logs (needs the tensorboard extra)
    progress: bool = True  # show a progress bar


@dataclass
class PrivacyConfig:
    """Differentially private training (Opacus): D's updates clipped per record and noised, G private by
    post-processing. On when ``epsilon`` or ``noise`` is set; see docs/privacy.md."""

    epsilon: float | None = None  # the budget: noise planned to end at it, the run stops before exceeding it
    delta: float | None = None  # None: the largest power of ten below 1/N
    noise: float | None = None  # noise multiplier sigma; None: planned from epsilon and the run's D steps
    max_grad_norm: float = 1.0  # per-record clipping bound C of D's gradient
    accountant: str = "prv"  # prv | rdp (Opacus's accountants)
    labels: str = "uniform"  # conditional runs, the classes G is trained on: uniform | histogram (DP release)
    label_noise: float = 20.0  # std of the Gaussian noise on each class count of the released histogram

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None or self.noise is not None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=model_section)  # model.arch's section: see models.registry.section_class
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegularizerConfig = field(default_factory=RegularizerConfig)
    g_optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    d_optim: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    dp: PrivacyConfig = field(default_factory=PrivacyConfig)

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


def suggest(name: str, choices: typing.Iterable[str]) -> str:
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
        # model.arch first: it decides which other model keys exist
        for key, value in sorted(values.items(), key=lambda item: not (section == "model" and item[0] == "arch")):
            set_value(cfg, f"{section}.{key}", value)


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set ``section.key`` to ``value`` (coerced to the field's type)."""
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"option {dotted!r} must look like section.key{suggest(dotted, _all_keys(cfg))}")
    section_name, key = parts
    sections = {f.name for f in dataclasses.fields(cfg)}
    if section_name not in sections:
        raise ConfigError(f"unknown config section {section_name!r}{suggest(section_name, sections)}")
    section = getattr(cfg, section_name)
    fields = {f.name: f for f in dataclasses.fields(section)}
    if section_name == "model" and key == "arch":
        model_spec(str(value))  # a one-line error for an unknown architecture
        cfg.model = switch_arch(cfg.model, str(value))
        return
    if key not in fields:
        if section_name == "model":
            _unknown_model_option(cfg.model.arch, key, list(fields))
        full = [f"{section_name}.{k}" for k in fields] + _all_keys(cfg)
        raise ConfigError(f"unknown option {dotted!r}{suggest(dotted, full)}")
    hint = typing.get_type_hints(type(section))[key]
    setattr(section, key, _coerce(dotted, value, hint))


def _unknown_model_option(arch: str, key: str, fields: list[str]) -> None:
    if key in DATA_FIELDS:
        where = "the labels (model.conditional=true)" if key == "num_classes" else f"the data (data.{key})"
        raise ConfigError(f"model.{key} is set from {where}, not in the model section")
    owners = [name for name, spec in ARCHITECTURES.items()
              if key in {f.name for f in dataclasses.fields(spec.config)}]
    if owners:
        raise ConfigError(f"model.{key} is not an option of model.arch={arch} (it is one of {', '.join(owners)}); "
                          f"set model.arch first")
    raise ConfigError(f"unknown option 'model.{key}' for model.arch={arch}{suggest(key, fields)}; "
                      f"{arch} has: {', '.join(fields)}")


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
