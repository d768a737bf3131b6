"""Decoding one image file (Pillow) to a ``(H, W, C)`` uint8 array.

Decoding keeps the colour model of each file: 1 channel for gray, 2 for gray+alpha, 3
for RGB, 4 for RGBA. Palette images become RGBA when they have transparency, else RGB;
CMYK and YCbCr become RGB; 1-bit becomes gray; 16-bit and float gray images are scaled
to 8 bits (16-bit: value / 257; float: 0..1 -> 0..255). EXIF orientation is applied; an
animated GIF gives its first frame.

Large JPEG photos can be decoded at a reduced scale (:func:`draft_target`) when that
loses nothing at the training size. A file that cannot be read raises; the loaders turn
the exception into a short reason with :func:`unreadable_reason`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ganforge.data.geometry import inner_size

_KEEP_IMAGE_BYTES = 512 * 512 * 4  # larger images are decoded in the second pass, at reduced scale
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP"})  # formats whose EXIF is known at open
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the image unreadable
        return 1


def _mode_channels(im: Image.Image) -> int:
    """Channel count an opened image decodes to (see :func:`_to_array`)."""
    mode = im.mode
    if mode in ("1", "L", "I", "F") or mode.startswith("I;"):
        return 1
    if mode in ("LA", "La"):
        return 2
    if mode == "P":
        return 4 if "transparency" in im.info else 3
    if mode in ("RGBA", "RGBa", "PA"):
        return 4
    return 3


def check_image(fp) -> tuple[int, int, int]:
    """(height, width, channels) of an image file as it decodes; decodes it to find damage.

    JPEG files are decoded at reduced scale, which still reads all of their data.
    """
    with Image.open(fp) as im:
        w, h = im.size
        channels = _mode_channels(im)
        if im.format == "JPEG":
            im.draft(im.mode, (64, 64))
        im.load()
        if _orientation(im) in _SWAPPING_ORIENTATIONS:
            h, w = w, h
        return h, w, channels


def read_image(fp, keep_bytes: int) -> tuple[int, int, int, np.ndarray | None]:
    """(height, width, channels, image or None) of an image file.

    The image is decoded to ``(H, W, C)`` uint8 when it is small (at most
    ``_KEEP_IMAGE_BYTES``) and fits in ``keep_bytes``; otherwise only the header is read.
    """
    with Image.open(fp) as im:
        w, h = im.size
        c = _mode_channels(im)
        if im.format in _EXIF_FORMATS and _orientation(im) in _SWAPPING_ORIENTATIONS:
            h, w = w, h
        if h * w * c > min(keep_bytes, _KEEP_IMAGE_BYTES):
            return h, w, c, None
        image = _loaded_array(im)
        return image.shape[0], image.shape[1], image.shape[2], image


def decode_image(fp, shrink_to: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Decode the first frame of an image file to ``(H, W, C)`` uint8, C = 1..4.

    ``shrink_to`` (height, width): for JPEG, decode at a reduced scale that is still at
    least this large (much faster for large photos). Returns (array, drafted).
    """
    with Image.open(fp) as im:
        drafted = False
        if shrink_to is not None and im.format == "JPEG":
            th, tw = shrink_to
            if _orientation(im) in _SWAPPING_ORIENTATIONS:
                th, tw = tw, th
            before = im.size
            im.draft(im.mode, (tw, th))
            drafted = im.size != before
        return _loaded_array(im), drafted


def _loaded_array(im: Image.Image) -> np.ndarray:
    """Decode an opened image (first frame, EXIF orientation applied) to (H, W, C) uint8."""
    im.load()
    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    return _to_array(im)


def _to_array(im: Image.Image) -> np.ndarray:
    """Convert a decoded image to ``(H, W, C)`` uint8 in L, LA, RGB or RGBA."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        pass
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa", "PA"):
        im = im.convert("RGBA")
    elif mode in ("I", "F") or mode.startswith("I;"):
        return _deep_gray_to_uint8(np.asarray(im), mode)[..., None]
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        im = im.convert("RGB")
    array = np.asarray(im)
    return array[..., None] if array.ndim == 2 else array


def _deep_gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer or float gray -> uint8.

    ``I;16*``: value / 257 (0..65535 -> 0..255). ``I``: kept when within 0..255, else
    treated as 16-bit. ``F``: 0..1 scaled by 255 when within 0..1, else stretched from
    its own minimum to maximum.
    """
    a = a.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and a.size and (a.max() > 255 or a.min() < 0)):
        a = a / 257.0
    elif mode == "F" and a.size:
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        else:
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def draft_target(h: int, w: int, resolution: int, fit: str) -> tuple[int, int] | None:
    """Smallest decode size that keeps quality (twice the fitted size), when worth drafting."""
    ih, iw = inner_size(h, w, resolution, fit)
    scale = max(ih / h, iw / w)
    if scale > 0.25:  # JPEG can only shrink by 1/2, 1/4, 1/8 and we keep a 2x margin
        return None
    return math.ceil(h * scale * 2), math.ceil(w * scale * 2)


def unreadable_reason(e: Exception) -> str:
    """A short description of why a file could not be read."""
    if isinstance(e, UnidentifiedImageError):
        return "not a recognised image file"
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "truncated" in text.lower():
        return "truncated file"
    return text if len(text) <= 100 else text[:97] + "..."


__all__ = ["check_image", "decode_image", "draft_target", "read_image", "unreadable_reason"]
