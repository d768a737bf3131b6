"""Channel and size policy: how every image is brought to one channel count and to the
square training size, and the batched fitting that applies it.

Channels
--------
A data set whose files differ in channel count is an error unless ``channels`` is given;
then every image is converted. Gray -> RGB repeats the gray value; RGB -> gray uses the
ITU-R 601 luma weights (as Pillow's ``convert("L")``); an alpha channel that is dropped is
composited onto **white** (logos and icons on a transparent background keep their look);
an alpha channel that is added is opaque.

Size policy
-----------
* ``resolution=None`` (auto): the smallest power of two at least as large as the
  longer side of the most common image size, clamped to 16..64. Larger sizes must be
  asked for explicitly (training cost grows fast with the resolution). An explicit
  resolution must be a power of two from 16 to 256.
* ``fit="auto"``: if every image fits inside the square and each side is at least 3/4
  of it (28x28 -> 32), the images are centred and padded by repeating their edge pixels
  (``pad``: no pixel is resampled and the padding can be cut away exactly);
  otherwise ``crop``.
* ``fit="crop"``: scale so the shorter side equals the resolution, then cut the centre
  square out of the longer side.
* ``fit="pad"``: letterbox: shrink so the longer side fits (never enlarge), then pad to
  the square by repeating the edge pixels.
* ``fit="resize"``: stretch to the square, ignoring the aspect ratio.

Resampling is bicubic with antialiasing (premultiplied alpha), done on batches with
torch (:func:`ganforge.data.geometry.fit_images`). :attr:`Geometry.height` / ``width``
record the original size when all images share one, so :meth:`Geometry.restore` can map
generated samples back to it.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch

from ganforge.choices import FIT_CHOICES
from ganforge.data.geometry import fit_images, smallest_power_of_two

AUTO_RESOLUTION_RANGE = (16, 64)  # the auto resolution is clamped to this range

_BATCH_IMAGES = 256  # decoded images of one size resized together
_PENDING_BYTES = 64 * 1024 * 1024  # decoded images held for batching before all are fitted


# ---------------------------------------------------------------------------
# channels


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, H, W, channels) uint8 (rules in the module docstring)."""
    have = images.shape[-1]
    if have == channels:
        return images
    has_alpha = have in (2, 4)
    colour = images[..., :-1] if has_alpha else images  # (N, H, W, 1 or 3)
    alpha = images[..., -1:] if has_alpha else None
    if alpha is not None and channels in (1, 3):
        colour = _composite_on_white(colour, alpha)
    if channels in (1, 2) and colour.shape[-1] == 3:
        colour = _luma(colour)
    elif channels in (3, 4) and colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    if channels in (2, 4):
        if alpha is None:
            alpha = np.full(images.shape[:-1] + (1,), 255, dtype=np.uint8)
        return np.concatenate([colour, alpha], axis=-1)
    return np.ascontiguousarray(colour)


def _composite_on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint32)
    return ((colour.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in the fixed-point form Pillow uses for ``convert("L")``."""
    r, g, b = (rgb[..., i : i + 1].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def mixed_channels(counts: Counter) -> str:
    """Why a set whose files differ in channel count cannot be loaded as it is, and what to pass."""
    parts = ", ".join(
        f"{c} channel{'s' if c > 1 else ''} ({n} file{'s' if n != 1 else ''})" for c, n in sorted(counts.items())
    )
    suggestion = 3 if max(counts) >= 3 else 1
    return f"mixed channel counts: {parts}; pass --channels {suggestion} to convert all"


# ---------------------------------------------------------------------------
# sizes


def auto_resolution(sizes: Counter) -> int:
    """The resolution for ``resolution=None``, from ``(height, width) -> images`` (see the module docstring)."""
    (h, w), _ = sizes.most_common(1)[0]
    low, high = AUTO_RESOLUTION_RANGE
    return min(high, max(low, smallest_power_of_two(max(h, w))))


def auto_fit(sizes: Counter, resolution: int) -> str:
    """``pad`` or ``crop``, what ``fit="auto"`` means for these sizes (see the module docstring)."""
    r = resolution
    fits = all(h <= r and w <= r and 4 * h >= 3 * r and 4 * w >= 3 * r for h, w in sizes)
    return "pad" if fits else "crop"


class Fitter:
    """Fits decoded images into one ``(N, R, R, C)`` buffer, resizing equal sizes in batches."""

    def __init__(self, total: int, resolution: int, channels: int, fit: str):
        self.resolution, self.channels, self.fit = resolution, channels, fit
        self.out = np.empty((total, resolution, resolution, channels), dtype=np.uint8)  # (N, R, R, C)
        self.done = np.zeros(total, dtype=bool)
        self.pending: dict[tuple, list[tuple[int, np.ndarray]]] = defaultdict(list)
        self.pending_bytes = 0

    def add(self, index: int, image: np.ndarray, source_size: tuple[int, int]) -> None:
        """``image`` (H, W, C') uint8; ``source_size`` its size before any reduced-scale decode."""
        if image.shape[2] != self.channels:
            image = convert_channels(image[None], self.channels)[0]
        r = self.resolution
        if image.shape[:2] == (r, r) == tuple(source_size):
            self.out[index] = image  # already the right size: nothing to fit
            self.done[index] = True
            return
        key = (tuple(source_size), image.shape)
        self.pending[key].append((index, image))
        self.pending_bytes += image.nbytes
        if self.pending_bytes > _PENDING_BYTES:  # many large images: fit everything held
            for k in list(self.pending):
                self._flush(k)
        elif len(self.pending[key]) >= _BATCH_IMAGES:
            self._flush(key)

    def _flush(self, key) -> None:
        items = self.pending.pop(key)
        self.pending_bytes -= sum(a.nbytes for _, a in items)
        batch = torch.from_numpy(np.stack([a for _, a in items])).permute(0, 3, 1, 2)  # (n, C, h, w)
        fitted = fit_images(batch, self.resolution, self.fit, source_size=key[0])  # (n, C, R, R)
        index = [i for i, _ in items]
        self.out[index] = fitted.permute(0, 2, 3, 1).numpy()
        self.done[index] = True

    def finish(self) -> tuple[torch.Tensor, np.ndarray]:
        for k in list(self.pending):
            self._flush(k)
        out = self.out if self.done.all() else self.out[self.done]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), self.done  # (N, C, R, R)


__all__ = [
    "AUTO_RESOLUTION_RANGE",
    "FIT_CHOICES",
    "Fitter",
    "auto_fit",
    "auto_resolution",
    "convert_channels",
    "mixed_channels",
]
