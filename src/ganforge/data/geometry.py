"""Image geometry: how source images were brought to the square training size, and back.

A GAN trains on square ``resolution x resolution`` images. :class:`Geometry` records
how the data set was fitted to that square (see the size policy in
:mod:`ganforge.data.policy`) so that generated samples can be turned back into
images of the original shape with :meth:`Geometry.restore`.

The forward operation (:func:`fit_images`) and the inverse share the same size
arithmetic (:func:`inner_size`), so a padded data set is restored pixel for pixel.

All resampling is bicubic with antialiasing, computed on uint8 like Pillow's
``BICUBIC`` resize, on whole batches. Images with an alpha channel are resized with
premultiplied alpha so that transparent pixels do not bleed their (invisible) colour
into the visible ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..choices import FIT_MODES

# Resize at most this many pixel values at once.
_CHUNK_ELEMENTS = 64 * 1024 * 1024


@dataclass
class Geometry:
    """How the images of a data set were fitted to the square training size."""

    resolution: int  # square training size, a power of two 16..256
    height: int | None  # original image height when all source images share one size, else None
    width: int | None  # original image width, likewise
    fit: str  # "pad" | "crop" | "resize": how images were brought to the resolution
    channels: int  # 1..4 (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {self.fit!r}")
        if not 1 <= self.channels <= 4:
            raise ValueError(f"channels must be 1..4, got {self.channels}")
        if (self.height is None) != (self.width is None):
            raise ValueError("height and width must both be set or both be None")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Geometry":
        return cls(
            resolution=int(d["resolution"]),
            height=None if d.get("height") is None else int(d["height"]),
            width=None if d.get("width") is None else int(d["width"]),
            fit=str(d["fit"]),
            channels=int(d["channels"]),
        )

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        """Turn generated uint8 samples ``(N, C, R, R)`` back into ``(N, C, height, width)``.

        ``pad`` is inverted exactly (the padding is cropped away, and a letterbox resize is
        undone); ``crop`` cannot be inverted, so the square images come back unchanged;
        ``resize`` stretches back to the original aspect. With mixed source sizes
        (``height is None``) the images come back unchanged.
        """
        if images.dim() != 4 or images.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(
                f"expected images of shape (N, C, {self.resolution}, {self.resolution}), "
                f"got {tuple(images.shape)}"
            )
        if self.height is None or self.width is None or self.fit == "crop":
            return images
        h, w, r = self.height, self.width, self.resolution
        if (h, w) == (r, r):
            return images
        if self.fit == "resize":
            return resize_images(images, (h, w))
        # pad: cut out the inner (possibly shrunk) image, then undo the shrink
        ih, iw = inner_size(h, w, r, "pad")
        top, left = (r - ih) // 2, (r - iw) // 2
        inner = images[:, :, top : top + ih, left : left + iw]
        if (ih, iw) != (h, w):
            inner = resize_images(inner, (h, w))
        return inner.contiguous()


def is_valid_resolution(resolution: int) -> bool:
    """True for the powers of two from 16 to 256."""
    return isinstance(resolution, int) and 16 <= resolution <= 256 and resolution & (resolution - 1) == 0


def inner_size(height: int, width: int, resolution: int, fit: str) -> tuple[int, int]:
    """Size an ``height x width`` image is resized to before it is padded or cropped.

    ``pad``: shrink (never enlarge) so the longer side fits; ``crop``: scale so the
    shorter side equals the resolution; ``resize``: the square itself.
    """
    if fit == "resize":
        return resolution, resolution
    if fit == "pad":
        scale = min(1.0, resolution / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))
    if fit == "crop":
        scale = resolution / min(height, width)
        return max(resolution, round(height * scale)), max(resolution, round(width * scale))
    raise ValueError(f"unknown fit {fit!r}")


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 images ``(N, C, H, W)`` to ``(N, C, *size)``: bicubic, antialiased.

    On the CPU this is torch's uint8 kernel, which computes like Pillow's ``BICUBIC``
    resize (results agree within 1). Gray+alpha and RGBA images are resized with
    premultiplied alpha, in 8 bits, as Pillow does.
    """
    n, c, h, w = images.shape
    size = (int(size[0]), int(size[1]))
    if (h, w) == size:
        return images
    out = torch.empty((n, c, *size), dtype=torch.uint8, device=images.device)
    step = max(1, _CHUNK_ELEMENTS // (c * max(h * w, size[0] * size[1])))
    has_alpha = c in (2, 4)
    for start in range(0, n, step):
        x = images[start : start + step]  # (n, C, H, W) uint8
        if has_alpha:  # premultiply so that transparent pixels carry no colour
            alpha = x[:, -1:].to(torch.int32)
            colour = (x[:, :-1].to(torch.int32) * alpha + 127) // 255
            x = torch.cat([colour.to(torch.uint8), x[:, -1:]], dim=1)
        y = _bicubic_uint8(x.contiguous(), size)
        if has_alpha:
            alpha = y[:, -1:].to(torch.int32)
            colour = (y[:, :-1].to(torch.int32) * 255 + alpha // 2) // alpha.clamp_min(1)
            colour = torch.where(alpha > 0, colour.clamp_(0, 255), torch.zeros_like(colour))
            y = torch.cat([colour.to(torch.uint8), y[:, -1:]], dim=1)
        out[start : start + step] = y
    return out


def _bicubic_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of uint8 ``(N, C, H, W)``; float32 where uint8 is unsupported."""
    if x.device.type == "cpu":
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    y = F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return y.clamp_(0.0, 255.0).round_().to(torch.uint8)


def edge_pad(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Centre ``(N, C, h, w)`` images (h, w <= resolution) on a square, repeating the edge pixels."""
    _, _, h, w = images.shape
    top, left = (resolution - h) // 2, (resolution - w) // 2
    rows = (torch.arange(resolution, device=images.device) - top).clamp_(0, h - 1)
    cols = (torch.arange(resolution, device=images.device) - left).clamp_(0, w - 1)
    return images.index_select(2, rows).index_select(3, cols)  # (N, C, R, R)


def fit_images(
    images: torch.Tensor, resolution: int, fit: str, source_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Bring uint8 images ``(N, C, H, W)`` to ``(N, C, resolution, resolution)``.

    ``source_size`` is the size the images had originally when they were decoded at a
    reduced scale (JPEG draft mode); the target sizes are computed from it so that every
    image of one original size is treated identically.
    """
    h, w = source_size if source_size is not None else tuple(images.shape[-2:])
    r = resolution
    ih, iw = inner_size(h, w, r, fit)
    x = resize_images(images, (ih, iw))
    if fit == "pad":
        x = edge_pad(x, r) if (ih, iw) != (r, r) else x
    elif fit == "crop":
        top, left = (ih - r) // 2, (iw - r) // 2
        x = x[:, :, top : top + r, left : left + r]
    return x.contiguous()


def smallest_power_of_two(n: int) -> int:
    """Smallest power of two >= n."""
    return 1 << (max(1, n) - 1).bit_length()
