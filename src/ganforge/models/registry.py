"""The registry of architectures: name -> (config dataclass, generator class, discriminator class).

An architecture registers its config dataclass with the networks it builds::

    @register_model("dcgan", generator=DCGANGenerator, discriminator=DCGANDiscriminator)
    @dataclass
    class DCGANConfig:
        ...

Every registered network follows one contract:

* ``generator(cfg)``: ``forward(z, c=None)``, z (N, z_dim) float, c (N,) int64 class labels or None;
* ``discriminator(cfg)``: ``forward(x, c=None)`` -> logits (N,);
* ``cfg.num_classes`` 0: unconditional, c must be None (labels raise ValueError);
  K > 0: class-conditional on labels 0..K-1, c is required. Both networks expose ``num_classes``
  and the generator ``z_dim``.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
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
