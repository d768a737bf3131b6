"""ganforge: train generative adversarial networks on your own images, evaluate and sample them."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_generator", "train", "Config"]


def __getattr__(name: str):
    # Lazy so that `import ganforge` (and the CLI's --help) does not import torch.
    if name == "load_generator":
        from .sampling import load_generator

        return load_generator
    if name == "train":
        from .training.loop import train

        return train
    if name == "Config":
        from .config import Config

        return Config
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
