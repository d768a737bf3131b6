"""Generator and discriminator architectures, built by name from a saved config."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator

# name -> (config class, generator class, discriminator class)
ARCHITECTURES: dict[str, tuple[type, type[nn.Module], type[nn.Module]]] = {
    "dcgan": (DCGANConfig, DCGANGenerator, DCGANDiscriminator),
}


def _lookup(arch: str):
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(f"unknown model {arch!r}; available: {', '.join(sorted(ARCHITECTURES))}") from None


def model_config(arch: str, **kwargs):
    """The architecture's config object from keyword arguments (unknown keys rejected)."""
    cfg_cls = _lookup(arch)[0]
    fields = set(cfg_cls.__dataclass_fields__)
    unknown = set(kwargs) - fields
    if unknown:
        raise ConfigError(f"unknown {arch} model option(s): {', '.join(sorted(unknown))}")
    return cfg_cls(**kwargs)


def build_generator(arch: str, cfg) -> nn.Module:
    return _lookup(arch)[1](cfg)


def build_discriminator(arch: str, cfg) -> nn.Module:
    return _lookup(arch)[2](cfg)


def list_models() -> list[str]:
    return sorted(ARCHITECTURES)
