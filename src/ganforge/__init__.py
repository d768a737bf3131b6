"""ganforge: train generative adversarial networks on your own images, evaluate and sample them."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__", "load_generator", "write_samples", "train", "Config", "build_config", "resolve_config",
    "next_run_dir", "evaluate_run",
]

# name -> module that defines it; imported lazily so that `import ganforge` (and the CLI's --help)
# does not import torch.
_LAZY = {
    "load_generator": "sampling",
    "write_samples": "sampling",
    "train": "training.loop",
    "Config": "config",
    "build_config": "configure",
    "resolve_config": "configure",
    "next_run_dir": "configure",
    "evaluate_run": "metrics.run_eval",
}


# register the checks of the evaluation options, and differential privacy as a training extension with its
# config section's checks (neither imports torch)
from .metrics import names as _metric_names  # noqa: E402,F401
from .privacy import extension as _privacy_extension  # noqa: E402,F401


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
