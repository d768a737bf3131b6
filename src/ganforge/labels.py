"""Class labels for a class-conditional generator: which classes to draw, and grids by class."""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import GanforgeError


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """(n,) int64: 0, 1, ..., K-1, 0, 1, ... so every class gets n/K samples (±1)."""
    return torch.arange(n) % num_classes


def proportional_labels(n: int, shares: Sequence[float], seed: int | None = None) -> torch.Tensor:
    """(n,) int64 drawn in the given class proportions (e.g. the training data's), reproducible by seed."""
    p = torch.as_tensor(shares, dtype=torch.float64)
    if p.ndim != 1 or len(p) == 0 or (p < 0).any() or p.sum() <= 0:
        raise GanforgeError("class proportions must be a non-empty list of non-negative numbers")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=gen)


def class_grid(num_classes: int, n: int) -> tuple[torch.Tensor, int]:
    """Labels for a grid with one row per class and the columns that fit in n images:
    -> ((K * cols,) int64 labels, cols). Each column shares one noise vector in the callers."""
    cols = max(1, n // num_classes)
    return torch.arange(num_classes).repeat_interleave(cols), cols


def parse_class(text: str, class_names: Sequence[str], num_classes: int) -> int:
    """A class by name (as in the data's folders or named set) or by index -> its index."""
    names = list(class_names)
    if text in names:
        return names.index(text)
    folded = [name.casefold() for name in names]
    if text.casefold() in folded:  # "sandal" for "Sandal"
        return folded.index(text.casefold())
    if text.strip().lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < num_classes:
            return index
        raise GanforgeError(f"class index {index} is out of range: the model has classes 0..{num_classes - 1}")
    import difflib

    close = difflib.get_close_matches(text, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(names) if names else f"indices 0..{num_classes - 1}"
    raise GanforgeError(f"unknown class {text!r}{hint}; choose from {listed}")
