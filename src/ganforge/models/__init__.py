"""Generator and discriminator architectures, built by name from a saved config.

See :mod:`ganforge.models.registry` for the contract every registered architecture follows:
``G(z, c=None)`` -> samples, ``D(x, c=None)`` -> logits (N,), with ``num_classes`` > 0 for
class-conditional networks.
"""
from __future__ import annotations

from .registry import (
    ARCHITECTURES,
    ModelSpec,
    build_discriminator,
    build_generator,
    check_section,
    config_fields,
    config_from_section,
    list_models,
    model_config,
    model_section,
    model_spec,
    register_model,
    section_class,
    switch_arch,
)

# Importing the architectures registers them.
from .dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator  # noqa: E402
from .mlp import MLPConfig, MLPDiscriminator, MLPGenerator  # noqa: E402
from .r3gan import R3GANConfig, R3GANDiscriminator, R3GANGenerator  # noqa: E402
from .resnet import ResNetConfig, ResNetDiscriminator, ResNetGenerator  # noqa: E402
from .stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator  # noqa: E402

__all__ = [
    "ARCHITECTURES", "ModelSpec", "build_discriminator", "build_generator", "check_section", "config_fields",
    "config_from_section", "list_models", "model_config", "model_section", "model_spec", "register_model",
    "section_class", "switch_arch",
    "DCGANConfig", "DCGANDiscriminator", "DCGANGenerator", "MLPConfig", "MLPDiscriminator", "MLPGenerator",
    "R3GANConfig", "R3GANDiscriminator", "R3GANGenerator", "ResNetConfig", "ResNetDiscriminator", "ResNetGenerator",
    "StyleGAN2Config", "StyleGAN2Discriminator", "StyleGAN2Generator",
]
