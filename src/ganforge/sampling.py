"""Loading a trained generator and drawing samples from it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .data.geometry import Geometry
from .errors import GanforgeError
from .models import build_generator, model_config
from .pixels import to_uint8
from .training.checkpoint import GENERATOR_FORMAT, find_checkpoint, load_network_weights, read_network_meta


@dataclass
class TrainedGenerator:
    """A generator with what is needed to turn its outputs back into images like the data."""

    G: nn.Module
    arch: str
    geometry: Geometry  # training size and how to map samples back to the data's own size
    class_names: list[str]
    step: int
    z_dim: int

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def noise(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Gaussian noise (n, z_dim) on the generator's device, reproducible for a given seed."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.z_dim, generator=gen).to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """z (n, z_dim) -> images (n, C, R, R) as float in [-1, 1] at the training resolution."""
        self.G.eval()
        out = []
        with tqdm(total=len(z), unit="img", desc="sampling", disable=not progress) as bar:
            for chunk in z.split(batch_size):
                out.append(self.G(chunk.to(self.device)).float().cpu())
                bar.update(len(chunk))
        return torch.cat(out)

    def sample(self, n: int, seed: int | None = None, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """n images as uint8 (n, C, H, W) in the data's original size where it can be restored.

        All n noise vectors are drawn at once, so the images do not depend on ``batch_size``.
        """
        images = to_uint8(self.generate(self.noise(n, seed), batch_size, progress))
        return self.geometry.restore(images)

    def sample_pil(self, n: int, seed: int | None = None):
        """n PIL images."""
        from .imageio import to_pil

        return to_pil(self.sample(n, seed))


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True) -> TrainedGenerator:
    """Rebuild G from a run folder (its newest checkpoint) or a checkpoint folder.

    With ``ema=True`` the moving average of G's weights is used when the run kept one.
    Only ``generator*.json`` and ``generator*.safetensors`` are read; no code is unpickled.
    """
    folder = find_checkpoint(Path(path))
    name = "generator_ema" if ema and (folder / "generator_ema.safetensors").is_file() else "generator"
    meta = read_network_meta(folder, name)
    if meta.get("format") != GENERATOR_FORMAT:
        raise GanforgeError(f"{folder / 'generator.json'} is not a ganforge generator ({meta.get('format')!r})")
    cfg = model_config(meta["arch"], **meta["model"])
    G = build_generator(meta["arch"], cfg)
    load_network_weights(folder, name, G)
    G.to(device)
    if name == "generator_ema" and meta.get("batchnorm_stats") != "recomputed":
        # Saved before ganforge recomputed the average's BatchNorm statistics: they are the live
        # G's, which do not fit the averaged weights. Recompute them as training now does.
        from .training.ema import EMA, recompute_batchnorm_stats

        batches = EMA(G, ema_kimg=1.0, batch_size=64, z_dim=cfg.z_dim).noise_batches(torch.device(device))
        recompute_batchnorm_stats(G, batches)
    G.eval()
    return TrainedGenerator(
        G=G,
        arch=meta["arch"],
        geometry=Geometry.from_dict(meta["geometry"]),
        class_names=list(meta.get("class_names", [])),
        step=int(meta.get("step", 0)),
        z_dim=cfg.z_dim,
    )


@dataclass
class WrittenSamples:
    """What :func:`write_samples` wrote."""

    path: Path  # the grid image, the .npz file or the folder
    kind: str  # grid | npz | folder
    n: int
    shape: tuple[int, ...]  # (C, H, W) of each image
    step: int  # the generator's training step


def write_samples(
    source: str | os.PathLike | TrainedGenerator,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    *,
    batch_size: int = 500,
    nrow: int | None = None,
    device: str | torch.device = "auto",
    ema: bool = True,
    progress: bool | None = None,
) -> WrittenSamples:
    """Draw ``n`` samples (noise from ``seed``) and write them where ``out`` says, by its extension.

    ``out``: a .png/.jpg/.jpeg/.webp grid (``nrow`` images per row), a .npz file (uint8
    ``images`` in the data's layout) or, without an extension, a folder of PNG files.
    ``source``: a run folder or checkpoint folder (loaded on ``device``; its weight average
    unless ``ema=False``), or a loaded :class:`TrainedGenerator`. ``progress``: a progress bar
    (default: when sampling takes more than one batch).
    """
    from .imageio import output_kind, save_folder, save_grid, save_npz

    if n <= 0 or batch_size <= 0:
        raise GanforgeError(f"n and batch_size must be positive, got {n} and {batch_size}")
    kind = output_kind(out)
    if isinstance(source, TrainedGenerator):
        gen = source
    else:
        from .training.runtime import resolve_device

        gen = load_generator(source, device=resolve_device(str(device)), ema=ema)
    images = gen.sample(n, seed=seed, batch_size=batch_size, progress=n > batch_size if progress is None else progress)
    if kind == "grid":
        path = save_grid(images, out, nrow=nrow)
    elif kind == "npz":
        path = save_npz(images, out)
    else:
        path = save_folder(images, out)
    return WrittenSamples(path=path, kind=kind, n=n, shape=tuple(images.shape[1:]), step=gen.step)
