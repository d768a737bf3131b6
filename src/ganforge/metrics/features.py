"""Feature extractors for the metrics: the standard FID Inception network or the domain network.

Every metric value names the extractor it was computed with (``fid_inception``,
``fd_domain``, ``kid_domain``, ...); numbers from different extractors are never compared.
Features of a reference image set are cached under ``<cache>/stats/`` by the extractor's
identity and a hash of the images, so repeated evaluations against the same data reuse
them, and a change of either recomputes them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cache import cache_root
from ..choices import EXTRACTORS
from ..errors import GanforgeError


@dataclass
class Features:
    features: np.ndarray  # (N, D) float32
    probs: np.ndarray | None  # (N, K) class probabilities, when the extractor has a classifier

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class Extractor:
    name: str  # "inception" | "domain"
    key: str  # identity of the network (name + weights), part of every cache key
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # uint8 batch -> (features, probs)
    batch_size: int = 500

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, progress: bool = False) -> Features:
        """uint8 (N, C, H, W) on any device -> Features (on the host; ``fn`` runs where its network is)."""
        feats, probs = [], []
        with tqdm(total=len(images), desc=f"{self.name} features", unit="img", disable=not progress) as bar:
            for chunk in images.split(self.batch_size):
                f, p = self.fn(chunk)
                feats.append(f.float().cpu().numpy())
                if p is not None:
                    probs.append(p.float().cpu().numpy())
                bar.update(len(chunk))
        return Features(np.concatenate(feats), np.concatenate(probs) if probs else None)


def images_hash(images: torch.Tensor) -> str:
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def make_extractor(
    name: str,
    reference: torch.Tensor,  # uint8 (N, C, H, W): the data the domain network is trained on
    labels: torch.Tensor | None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Extractor:
    """``auto``: Inception for colour images when its weights are on disk; the domain network for
    grayscale images (where ImageNet features fit poorly) or when the weights are absent.

    The network extracts on ``device`` (batches are moved there), in exact float32 on any device. The
    domain network is trained on the CPU, so its cached weights do not depend on where it was first needed.
    """
    if name not in EXTRACTORS:
        raise GanforgeError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    if name == "auto":
        from .inception import inception_available

        colour = reference.shape[1] >= 3
        name = "inception" if colour and inception_available(cache_dir) else "domain"
    if name == "inception":
        from .inception import load_inception

        net = load_inception(cache_dir=cache_dir, progress=progress).eval().to(device)

        def run_inception(batch: torch.Tensor):
            feats, logits = net(_rgb_or_gray(batch.to(device)))
            return feats, torch.softmax(logits, dim=1)  # over the network's 1008 outputs, as the IS protocol does

        return Extractor("inception", "inception-2015-12-05", run_inception, batch_size=100)

    from .domain import extract, load_or_train

    net, key = load_or_train(reference, labels, cache_dir=cache_dir, progress=progress)
    net = net.to(device)
    return Extractor("domain", f"domain-{key}", lambda batch: extract(net, batch))


def _rgb_or_gray(images: torch.Tensor) -> torch.Tensor:
    """Inception reads 1 or 3 channels: drop the alpha channel of LA / RGBA images."""
    return images[:, :1] if images.shape[1] == 2 else images[:, :3]


def cached_features(
    extractor: Extractor, images: torch.Tensor, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> Features:
    """Features of a reference set, read from the cache when the same images met the same extractor before."""
    folder = cache_root(cache_dir) / "stats"
    path = folder / f"{extractor.key}-{images_hash(images)}.npz"
    if path.is_file():
        data = np.load(path)
        return Features(data["features"], data["probs"] if "probs" in data else None)
    result = extractor(images, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"features": result.features}
    if result.probs is not None:
        arrays["probs"] = result.probs
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return result
