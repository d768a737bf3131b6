"""Writing images: grids, folders of PNG files and arrays."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import GanforgeError

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """uint8 (N, C, H, W) -> N PIL images (L, LA, RGB or RGBA by channel count)."""
    array = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)
    mode = _MODES[array.shape[-1]]
    return [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in array]


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile uint8 (N, C, H, W) into one uint8 (C, H', W') image, ``nrow`` images per row."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(make_grid(images.cpu(), nrow)[None])[0].save(path)
    return path


def save_folder(images: torch.Tensor, folder: str | os.PathLike, start: int = 0) -> Path:
    """One PNG per image: folder/000000.png, ..."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(to_pil(images), start=start):
        img.save(folder / f"{i:06d}.png")
    return folder


def to_numpy_layout(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, H, W) for one channel, else (N, H, W, C): the usual array layouts."""
    array = images.cpu().numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def save_npz(images: torch.Tensor, path: str | os.PathLike, labels: torch.Tensor | None = None,
             extra: dict[str, torch.Tensor] | None = None) -> Path:
    """uint8 ``images`` in the usual layout, ``labels`` beside them, and any ``extra`` arrays by name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"images": to_numpy_layout(images)}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy()
    arrays.update({name: value.cpu().numpy() for name, value in (extra or {}).items()})
    np.savez(path, **arrays)
    return path


def output_kind(out: str | os.PathLike) -> str:
    """Where ``ganforge sample --out`` writes: 'grid' (.png/.jpg), 'npz', or 'folder'."""
    suffix = Path(out).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".webp"):
        return "grid"
    if suffix == ".npz":
        return "npz"
    if suffix:
        raise GanforgeError(f"cannot write samples to {out}: use a .png/.jpg grid, a .npz file or a folder")
    return "folder"
