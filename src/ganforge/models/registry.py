"""The registry of architectures: name -> (config dataclass, generator class, discriminator class).

An architecture registers its config dataclass with the networks it builds::

    @register_model("dcgan", generator=DCGANGenerator, discriminator=DCGANDiscriminator)
    @dataclass
    class DCGANConfig:
        ...

Every registered network follows one contract:

* ``generator(cfg)``: ``forward(z, c=None)``, z (N, z_dim) float, c (N,) int64 class labels or None;
* ``discriminator(cfg)``: ``forward(x, c=None)`` -> logits (N,);
* images in [-1, 1] (tanh), unless the generator class sets ``bounded_output = False`` (a linear
  output, as StyleGAN2 and R3GAN have): then pixels are clamped when converted;
* a conditional generator also takes class weights c (N, K) float, a blend of the classes (walks);
* ``cfg.num_classes`` 0: unconditional, c must be None (labels raise ValueError);
  K > 0: class-conditional on labels 0..K-1, c is required. Both networks expose ``num_classes``
  and the generator ``z_dim``.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import typing
from typing import Any, NamedTuple

from torch import nn

from ..errors import ConfigError


class ModelSpec(NamedTuple):
    config: type  # a dataclass with z_dim and num_classes fields
    generator: type[nn.Module]
    discriminator: type[nn.Module]
    data: str  # what the networks generate: "images" (N, C, R, R) or "points" (N, dim)


ARCHITECTURES: dict[str, ModelSpec] = {}
DATA_KINDS = ("images", "points")
# Config fields that the training data sets (from data.resolution, data.channels and the labels), never the user.
DATA_FIELDS = ("resolution", "channels", "num_classes")
# Fields every ``model`` config section has before the architecture's own options.
SECTION_FIELDS = ("arch", "conditional")


def register_model(name: str, *, generator: type[nn.Module], discriminator: type[nn.Module], data: str = "images"):
    """Class decorator registering a config dataclass, with its networks, under ``name``."""
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")

    def decorator(cfg_cls: type) -> type:
        if not dataclasses.is_dataclass(cfg_cls):
            raise TypeError(f"{cfg_cls.__name__} must be a dataclass to be registered as a model config")
        missing = {"z_dim", "num_classes"} - {f.name for f in dataclasses.fields(cfg_cls)}
        if missing:
            raise TypeError(f"{cfg_cls.__name__} lacks the field(s) every model config has: "
                            f"{', '.join(sorted(missing))}")
        if name in ARCHITECTURES and ARCHITECTURES[name].config is not cfg_cls:
            raise ValueError(f"model {name!r} is already registered (by {ARCHITECTURES[name].config.__name__})")
        ARCHITECTURES[name] = ModelSpec(cfg_cls, generator, discriminator, data)
        return cfg_cls

    return decorator


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def model_spec(arch: str) -> ModelSpec:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(
            f"unknown model {arch!r}{_suggest(arch, ARCHITECTURES)}; available: {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def config_fields(arch: str) -> dict[str, Any]:
    """The architecture's config options with their defaults, e.g. to pass it only the keys it has."""
    fields = {}
    for f in dataclasses.fields(model_spec(arch).config):
        if f.default is not dataclasses.MISSING:
            fields[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = f.default_factory()
        else:
            fields[f.name] = None  # required: no default
    return fields


def model_config(arch: str, **kwargs):
    """The architecture's config object from keyword arguments; unknown keys are rejected with a suggestion."""
    cfg_cls = model_spec(arch).config
    fields = [f.name for f in dataclasses.fields(cfg_cls)]
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        listed = ", ".join(f"{key!r}{_suggest(key, fields)}" for key in unknown)
        raise ConfigError(f"unknown {arch} model option(s): {listed}; {arch} has: {', '.join(fields)}")
    return cfg_cls(**kwargs)


def _checked(arch: str, cfg) -> ModelSpec:
    spec = model_spec(arch)
    if not isinstance(cfg, spec.config):
        raise ConfigError(f"{arch} networks need a {spec.config.__name__}, got {type(cfg).__name__}")
    return spec


# ------------------------------------------------------------------ the `model` config section


@functools.cache
def section_class(arch: str) -> type:
    """The dataclass of the ``model`` config section when ``model.arch`` is ``arch``.

    Its fields are ``arch``, ``conditional`` and the architecture's own options (its config
    dataclass without :data:`DATA_FIELDS`), with the architecture's types and defaults, so the
    section accepts exactly the keys that architecture has."""
    spec = model_spec(arch)
    hints = typing.get_type_hints(spec.config)
    fields: list[tuple] = [("arch", str, dataclasses.field(default=arch)),
                           ("conditional", bool, dataclasses.field(default=False))]
    for f in dataclasses.fields(spec.config):
        if f.name not in DATA_FIELDS:
            fields.append((f.name, hints[f.name],
                           dataclasses.field(default=f.default, default_factory=f.default_factory)))
    name = "".join(part.capitalize() for part in arch.replace("-", "_").split("_")) + "ModelSection"
    return dataclasses.make_dataclass(name, fields, namespace={"__reduce__": _reduce_section})


def _reduce_section(section) -> tuple:
    return model_section, (section.arch,), dataclasses.asdict(section)


def model_section(arch: str = "dcgan"):
    """A ``model`` config section for ``arch`` with that architecture's defaults."""
    return section_class(arch)()


def switch_arch(section, arch: str):
    """The section for another architecture. Options both architectures have keep their value when it
    was changed from the old architecture's default (a user's or a recipe's choice); the others take
    the new architecture's defaults."""
    new = model_section(arch)
    old_defaults = model_section(section.arch)
    shared = {f.name for f in dataclasses.fields(new)} - {"arch"}
    for f in dataclasses.fields(section):
        if f.name in shared and (f.name == "conditional" or getattr(section, f.name) != getattr(old_defaults, f.name)):
            setattr(new, f.name, getattr(section, f.name))
    return new


def section_options(section) -> dict[str, Any]:
    """The architecture's own options of a ``model`` section (no arch, no conditional)."""
    return {k: v for k, v in dataclasses.asdict(section).items() if k not in SECTION_FIELDS}


def config_from_section(section, **data: Any):
    """The architecture's config from a ``model`` section and what the data sets (resolution, channels,
    num_classes; those the architecture lacks, e.g. resolution for points, are not passed)."""
    unknown = set(data) - set(DATA_FIELDS)
    if unknown:
        raise TypeError(f"only {', '.join(DATA_FIELDS)} come from the data, not {', '.join(sorted(unknown))}")
    has = {f.name for f in dataclasses.fields(model_spec(section.arch).config)}
    return model_config(section.arch, **section_options(section), **{k: v for k, v in data.items() if k in has})


def check_section(section) -> None:
    """The architecture's own checks of its options (its config's ``check()``, if it defines one)."""
    cfg = config_from_section(section)
    check = getattr(cfg, "check", None)
    if check is not None:
        check()


def check_option_values(cfg, *, positive: tuple[str, ...] = (), fractions: tuple[str, ...] = (),
                        choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """Shared checks for an architecture's ``check()``: ``positive`` options > 0, ``fractions`` in [0, 1),
    ``choices`` among their values; a one-line ConfigError naming ``model.<option>`` otherwise."""
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"model.{name} must be positive, got {getattr(cfg, name)}")
    for name in fractions:
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(cfg, name)}")
    for name, allowed in (choices or {}).items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise ConfigError(f"model.{name} must be one of {', '.join(allowed)}, got {value!r}{_suggest(str(value), allowed)}")


def build_generator(arch: str, cfg) -> nn.Module:
    return _checked(arch, cfg).generator(cfg)


def build_discriminator(arch: str, cfg) -> nn.Module:
    return _checked(arch, cfg).discriminator(cfg)


def list_models(pattern: str | None = None, *, data: str | None = None) -> list[str]:
    """Registered architecture names, optionally filtered by a glob ``pattern`` and by what they generate."""
    names = sorted(ARCHITECTURES)
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if data is not None:
        names = [n for n in names if ARCHITECTURES[n].data == data]
    return names
