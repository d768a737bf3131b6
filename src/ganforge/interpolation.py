"""Latent walks: frames that move smoothly between random points of G's noise space (and classes).

``ganforge sample RUN --interpolate 8 --out walk.gif`` visits 8 noise vectors drawn from the seed
and returns to the first, so the animation loops. Gaussian noise is interpolated along great
circles (spherical interpolation, as in the DCGAN and StyleGAN papers' walks), which keeps every
frame's noise at the norm the generator was trained on; a straight line between two Gaussian
vectors passes through points of unusually small norm. A class-conditional G also walks between
classes: keyframe k shows class k mod K (or every keyframe the class asked for), and the one-hot
class weights blend linearly between keyframes (generators accept (N, K) class weights).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import GanforgeError
from .pixels import to_uint8


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: a, b (D,), t (T,) in [0, 1] -> (T, D); the straight line where a, b are parallel."""
    a64, b64 = a.double(), b.double()
    cos = torch.dot(a64, b64) / (a64.norm() * b64.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = t.double()[:, None]  # (T, 1)
    if omega.abs() < 1e-6:
        out = (1 - t) * a64 + t * b64
    else:
        out = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    return out.to(a.dtype)


@dataclass
class Walk:
    """The inputs of a latent walk: z (F, z_dim) and, for a conditional G, class weights (F, K)."""

    z: torch.Tensor
    class_weights: torch.Tensor | None
    keyframe_classes: list[int] | None  # the class shown at each keyframe (conditional G)


def plan_walk(z_dim: int, keys: int, frames: int, seed: int = 0, num_classes: int = 0,
              cls: int | None = None) -> Walk:
    """``keys`` keyframes from ``seed``, ``frames`` frames from each keyframe to the next (the last back to
    the first): keys * frames frames in all. ``cls``: every keyframe of a conditional G shows this class."""
    if keys < 2 or frames < 1:
        raise GanforgeError(f"a walk needs at least 2 keyframes and 1 frame between them, got {keys} and {frames}")
    points = torch.randn(keys, z_dim, generator=torch.Generator().manual_seed(seed))  # (keys, z_dim)
    t = torch.arange(frames, dtype=torch.float64) / frames  # (frames,): each segment's end is the next's start
    z = torch.cat([slerp(points[k], points[(k + 1) % keys], t) for k in range(keys)])  # (keys*frames, z_dim)
    if not num_classes:
        return Walk(z, None, None)
    classes = [cls if cls is not None else k % num_classes for k in range(keys)]
    onehot = torch.eye(num_classes)[classes]  # (keys, K)
    tt = t.float()[:, None]
    weights = torch.cat([(1 - tt) * onehot[k] + tt * onehot[(k + 1) % keys] for k in range(keys)])  # (F, K)
    return Walk(z, weights, classes)


def render_walk(gen, walk: Walk, batch_size: int = 256, progress: bool = False, seed: int = 0) -> torch.Tensor:
    """The walk's frames from a :class:`~ganforge.sampling.TrainedGenerator`: uint8 (F, C, H, W) in the data's size."""
    images = gen.generate(walk.z.to(gen.device), batch_size, progress, labels=walk.class_weights, seed=seed)
    return gen.geometry.restore(to_uint8(images))


ANIMATIONS = (".gif", ".webp")


def write_walk(gen, keys: int, out: str | os.PathLike, frames: int = 16, seed: int = 0, fps: float = 24.0,
               cls: str | int | None = None, batch_size: int = 256, progress: bool = False) -> tuple[Path, int]:
    """Render a walk of ``gen`` (a TrainedGenerator) and write it by ``out``'s extension: an animation
    (.gif, .webp), a grid with one row per keyframe-to-keyframe segment (.png, .jpg), a .npz (``images``
    plus the ``z`` and ``class_weights`` that made them) or a folder of PNG frames. Returns (path, frames)."""
    from .imageio import output_kind, save_folder, save_grid, save_npz
    from .labels import parse_class

    suffix = Path(out).suffix.lower()
    kind = "animation" if suffix in ANIMATIONS else output_kind(out)
    if cls is not None and not gen.num_classes:
        raise GanforgeError("this generator is not class-conditional: it cannot walk through a class")
    index = parse_class(str(cls), gen.class_names, gen.num_classes) if cls is not None else None
    walk = plan_walk(gen.z_dim, keys, frames, seed, gen.num_classes, index)
    images = render_walk(gen, walk, batch_size, progress, seed)
    if kind == "animation":
        path = save_animation(images, out, fps)
    elif kind == "grid":
        path = save_grid(images, out, nrow=frames)
    elif kind == "npz":
        extra = {"z": walk.z} if walk.class_weights is None else {"z": walk.z, "class_weights": walk.class_weights}
        path = save_npz(images, out, extra=extra)
    else:
        path = save_folder(images, out)
    return path, len(images)


def save_animation(frames: torch.Tensor, path: str | os.PathLike, fps: float = 24.0) -> Path:
    """uint8 (F, C, H, W) -> an animated .gif or .webp that loops forever."""
    from .imageio import to_pil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = to_pil(frames)
    if frames.shape[1] in (2, 4):  # GIF has no partial transparency: flatten alpha onto white
        images = [_on_white(img) for img in images]
    duration = max(1, round(1000 / fps))  # milliseconds per frame
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def _on_white(img):
    from PIL import Image

    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB" if img.mode == "RGBA" else "L")
