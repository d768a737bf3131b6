"""Loading a trained generator and drawing samples from it."""
from __future__ import annotations

import inspect
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
from .runs import GENERATOR_EMA, GENERATOR_FORMAT, find_checkpoint, load_network_weights, read_network_meta


@dataclass
class TrainedGenerator:
    """A generator with what is needed to turn its outputs back into images like the data."""

    G: nn.Module
    arch: str
    geometry: Geometry  # training size and how to map samples back to the data's own size
    class_names: list[str]
    step: int
    z_dim: int
    num_classes: int = 0  # > 0: class-conditional, G(z, labels)
    class_counts: list[int] | None = None  # images per class in the training data (conditional runs)
    truncation: float = 1.0  # style-based G: psi of the truncation trick (1: none; 0: the average style)
    privacy: dict | None = None  # a differentially private run's guarantee (epsilon, delta, ...), else None

    def labels_for(self, n: int, classes: str | int | None = None, seed: int | None = None) -> torch.Tensor | None:
        """(n,) labels for a conditional G: ``None``/"balanced" (every class n/K times), "data" (the
        training data's class proportions, drawn with ``seed``), or one class by name or index.
        None for an unconditional G (which refuses a class)."""
        from .labels import balanced_labels, parse_class, proportional_labels

        if not self.num_classes:
            if classes not in (None, "balanced"):
                raise GanforgeError("this generator is not class-conditional: it cannot sample a class")
            return None
        if classes is None or classes == "balanced":
            return balanced_labels(n, self.num_classes)
        if classes == "data":
            if not self.class_counts:
                raise GanforgeError("this run did not record its data's class proportions (a private run keeps "
                                    "them only with dp.labels=histogram); use balanced classes")
            return proportional_labels(n, self.class_counts, seed)
        return torch.full((n,), parse_class(str(classes), self.class_names, self.num_classes), dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def noise(self, n: int, seed: int | None = None) -> torch.Tensor:
        """Gaussian noise (n, z_dim) on the generator's device, reproducible for a given seed."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.z_dim, generator=gen).to(self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 256, progress: bool = False,
                 labels: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
        """z (n, z_dim) [and labels (n,) or class weights (n, K) for a conditional G] -> images (n, C, R, R)
        as float in [-1, 1] at the training resolution. What G draws itself (StyleGAN2's noise inputs)
        comes from torch's global generator, seeded with ``seed`` inside a forked RNG state (the caller's
        is left alone): the same seed, batch size and device give the same images."""
        if self.num_classes and labels is None:
            raise GanforgeError("this generator is class-conditional: pass labels (see labels_for)")
        if not self.num_classes and labels is not None:
            raise GanforgeError("this generator is not class-conditional: it takes no labels")
        self.G.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0 if seed is None else seed)
            return self._generate(z, batch_size, progress, labels)

    def _options(self) -> dict:
        """Keyword arguments for G: the truncation psi, for generators that have the trick."""
        if self.truncation == 1.0:
            return {}
        if "truncation_psi" not in inspect.signature(self.G.forward).parameters:
            raise GanforgeError(f"truncation needs a style-based generator (stylegan2); this run's is {self.arch}")
        return {"truncation_psi": self.truncation}

    def _generate(self, z, batch_size, progress, labels) -> torch.Tensor:
        out, options = [], self._options()
        with tqdm(total=len(z), unit="img", desc="sampling", disable=not progress) as bar:
            for start in range(0, len(z), batch_size):
                chunk = z[start:start + batch_size].to(self.device)
                c = labels[start:start + batch_size].to(self.device) if labels is not None else None
                out.append(self.G(chunk, c, **options).float().cpu())
                bar.update(len(chunk))
        return torch.cat(out)

    def sample(self, n: int, seed: int | None = None, batch_size: int = 256, progress: bool = False,
               labels: torch.Tensor | str | int | None = None) -> torch.Tensor:
        """n images as uint8 (n, C, H, W) in the data's original size where it can be restored.

        All n noise vectors are drawn at once, so the images do not depend on ``batch_size``.
        ``labels`` (conditional G): a (n,) tensor of classes, or what :meth:`labels_for` takes
        (default: balanced classes).
        """
        if labels is None or isinstance(labels, (str, int)):
            labels = self.labels_for(n, labels, seed)
        images = to_uint8(self.generate(self.noise(n, seed), batch_size, progress, labels=labels, seed=seed))
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
    name = GENERATOR_EMA if ema and (folder / f"{GENERATOR_EMA}.safetensors").is_file() else "generator"
    meta = read_network_meta(folder, name)
    if meta.get("format") != GENERATOR_FORMAT:
        raise GanforgeError(f"{folder / 'generator.json'} is not a ganforge generator ({meta.get('format')!r})")
    cfg = model_config(meta["arch"], **meta["model"])
    G = build_generator(meta["arch"], cfg)
    load_network_weights(folder, name, G)
    G.to(device)
    if name == GENERATOR_EMA and meta.get("batchnorm_stats") != "recomputed":
        # Saved before ganforge recomputed the average's BatchNorm statistics: they are the live
        # G's, which do not fit the averaged weights. Recompute them as training now does.
        from .models.batchnorm import recompute_batchnorm_stats, standing_noise

        batches = standing_noise(64, cfg.z_dim, getattr(cfg, "num_classes", 0), torch.device(device))
        recompute_batchnorm_stats(G, batches)
    G.eval()
    return TrainedGenerator(
        G=G,
        arch=meta["arch"],
        geometry=Geometry.from_dict(meta["geometry"]),
        class_names=list(meta.get("class_names", [])),
        step=int(meta.get("step", 0)),
        z_dim=cfg.z_dim,
        num_classes=getattr(cfg, "num_classes", 0),
        class_counts=meta.get("class_counts"),
        privacy=meta.get("privacy"),
    )


@dataclass
class WrittenSamples:
    """What :func:`write_samples` wrote."""

    path: Path  # the grid image, the .npz file or the folder
    kind: str  # grid | npz | folder
    n: int
    shape: tuple[int, ...]  # (C, H, W) of each image
    step: int  # the generator's training step
    privacy: dict | None = None  # the generator's DP guarantee when it was trained privately


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
    classes: str | int | None = None,
    truncation: float = 1.0,
) -> WrittenSamples:
    """Draw ``n`` samples (noise from ``seed``) and write them where ``out`` says, by its extension.

    ``out``: a .png/.jpg/.jpeg/.webp grid (``nrow`` images per row), a .npz file (uint8
    ``images`` in the data's layout) or, without an extension, a folder of PNG files.
    ``source``: a run folder or checkpoint folder (loaded on ``device``; its weight average
    unless ``ema=False``), or a loaded :class:`TrainedGenerator`. ``progress``: a progress bar
    (default: when sampling takes more than one batch). ``classes`` (conditional runs): one class by
    name or index, "data" (the training data's proportions) or "balanced"; without it a grid has
    one row per class (each column one noise vector) and arrays and folders are balanced. A .npz
    of a conditional run holds ``labels`` beside ``images``. ``truncation``: psi of the truncation
    trick for a style-based G (StyleGAN2; 1 = none).
    """
    from .imageio import output_kind, save_folder, save_grid, save_npz

    if n <= 0 or batch_size <= 0:
        raise GanforgeError(f"n and batch_size must be positive, got {n} and {batch_size}")
    kind = output_kind(out)
    if isinstance(source, TrainedGenerator):
        gen = source
    else:
        from .devices import resolve_device

        gen = load_generator(source, device=resolve_device(str(device)), ema=ema)
    gen.truncation = truncation
    show = n > batch_size if progress is None else progress
    if kind == "grid" and gen.num_classes and classes is None:  # one row per class
        from .labels import class_grid

        labels, cols = class_grid(gen.num_classes, n)
        z = gen.noise(cols, seed).repeat(gen.num_classes, 1)
        images = gen.geometry.restore(to_uint8(gen.generate(z, batch_size, show, labels=labels, seed=seed)))
        nrow = nrow or cols
    else:
        labels = gen.labels_for(n, classes, seed)
        images = gen.sample(n, seed=seed, batch_size=batch_size, progress=show, labels=labels)
    if kind == "grid":
        path = save_grid(images, out, nrow=nrow)
    elif kind == "npz":
        path = save_npz(images, out, labels=labels)
    else:
        path = save_folder(images, out)
    return WrittenSamples(path=path, kind=kind, n=len(images), shape=tuple(images.shape[1:]), step=gen.step,
                          privacy=gen.privacy)
