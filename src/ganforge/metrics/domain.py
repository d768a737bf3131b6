"""Data-set-specific feature networks, trained once on the reference data and cached.

Inception features (trained on ImageNet photos) describe small grayscale sets such as
Fashion-MNIST poorly, and their weights may be unavailable offline. The domain network is
a compact CNN trained on the reference data set itself:

* with labels, a **classifier** trained on them (cross-entropy); its softmax also gives
  class histograms for mode coverage and the Inception Score;
* without labels, an **autoencoder** whose 128-value bottleneck must reconstruct the image
  (mean squared error); there are no class probabilities then.

Either way the features are the encoder's globally pooled 128 activations. Networks are
cached under ``<cache>/features/domain-<hash>/`` by a hash of the training images, labels
and this recipe's version, so a data set trains its network once. Metric names carry the
extractor (``fd_domain``), and numbers from different extractors are never mixed.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..cache import cache_root
from ..devices import exact_float32
from ..pixels import from_uint8

INPUT_SIZE = 32
FEATURE_DIM = 128
MIN_UPDATES = 300  # optimiser steps a small data set still gets (see train_domain_net)
VERSION = 3  # bump when an architecture or training recipe changes: invalidates caches


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DomainNet(nn.Module):
    """Encoder (N, C, 32, 32) in [-1, 1] -> features (N, 128), with a classifier or decoder head.

    ``classes > 0``: ``forward`` returns class logits (N, classes).
    ``classes == 0``: an autoencoder; ``forward`` returns the reconstruction (N, C, 32, 32).

    Weights and inputs are channels-last: oneDNN's CPU convolutions then run this network 1.4x (training) and
    1.5x (features) faster, with the same features to ~1e-8 (measured on an AMD EPYC, one thread).
    """

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.channels, self.classes = channels, classes
        self.body = nn.Sequential(
            *_block(channels, 32), *_block(32, 32), nn.MaxPool2d(2),  # (N, 32, 16, 16)
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),  # (N, 64, 8, 8)
            *_block(64, FEATURE_DIM), *_block(FEATURE_DIM, FEATURE_DIM),  # (N, 128, 8, 8)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, 128)
        )
        if classes > 0:
            self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, classes))
        else:
            self.head = nn.Sequential(
                nn.Linear(FEATURE_DIM, 128 * 4 * 4), nn.Unflatten(1, (128, 4, 4)), nn.ReLU(),  # (N, 128, 4, 4)
                nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),  # (N, 64, 8, 8)
                nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # (N, 32, 16, 16)
                nn.ConvTranspose2d(32, channels, 4, 2, 1), nn.Tanh(),  # (N, C, 32, 32)
            )
        self.to(memory_format=torch.channels_last)  # kept by load_state_dict (it copies into these tensors)

    @property
    def is_classifier(self) -> bool:
        return self.classes > 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) of any size -> float (N, C, 32, 32) in [-1, 1]; antialiased bilinear resize if needed."""
    x = from_uint8(images)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


def data_hash(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    h = hashlib.sha256()
    h.update(str((VERSION, tuple(images.shape))).encode())
    h.update(images.cpu().numpy().tobytes())
    if labels is not None:
        h.update(labels.cpu().numpy().astype("int64").tobytes())
    return h.hexdigest()[:16]


def train_domain_net(
    images: torch.Tensor,  # (N, C, H, W) uint8
    labels: torch.Tensor | None,  # (N,) int64, or None for an autoencoder
    epochs: int = 3,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> DomainNet:
    """Adam with a one-cycle schedule; the classifier also sees random shifts of up to 2 px.

    ``batch_size`` None: 256 for large sets, smaller for small ones so that training still
    takes at least ~300 updates (a 3,000-image set would otherwise get only 33).

    The global random state is left as it was (training runs that evaluate stay reproducible).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _train(images, labels, epochs, batch_size, seed, progress)


def _train(images, labels, epochs, batch_size, seed, progress) -> DomainNet:
    if batch_size is None:
        batch_size = int(min(256, max(32, len(images) * epochs // MIN_UPDATES)))
    classes = int(labels.max()) + 1 if labels is not None else 0
    net = DomainNet(images.shape[1], classes)
    steps = epochs * max(1, len(images) // batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    x_all = prepare(images)
    gen = torch.Generator().manual_seed(seed)
    kind = "classifier" if classes else "autoencoder"
    net.train()
    with tqdm(total=steps, desc=f"training domain {kind}", unit="step", disable=not progress) as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), generator=gen)
            for i in range(max(1, len(x_all) // batch_size)):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                x = x_all[idx]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16()):
                    if classes:
                        loss = F.cross_entropy(net(_random_shift(x, gen)).float(), labels[idx])
                    else:
                        loss = F.mse_loss(net(x).float(), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
    return net.eval()


def _random_shift(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    dx, dy = torch.randint(-pad, pad + 1, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _bf16() -> bool:
    from ..devices import cpu_has_native_bf16

    return cpu_has_native_bf16()


@torch.no_grad()
def extract(net: DomainNet, images: torch.Tensor, batch_size: int = 500, progress: bool = False):
    """uint8 (N, C, H, W) -> (features (N, 128) float32, class probabilities (N, classes) or None), computed in
    exact float32 on the network's device (and returned there)."""
    feats, probs = [], []
    net.eval()
    device = next(net.parameters()).device
    with tqdm(total=len(images), desc="domain features", unit="img", disable=not progress) as bar, \
            exact_float32(device):
        for chunk in images.split(batch_size):
            f = net.features(prepare(chunk.to(device)))
            feats.append(f)
            if net.is_classifier:
                probs.append(torch.softmax(net.head(f), dim=1))
            bar.update(len(chunk))
    return torch.cat(feats), (torch.cat(probs) if probs else None)


def load_or_train(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[DomainNet, str]:
    """The domain network for this data set and its cache key, trained once and then read from the cache."""
    key = data_hash(images, labels)
    folder = cache_root(cache_dir) / "features" / f"domain-{key}"
    weights, meta = folder / "domain.safetensors", folder / "domain.json"
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        net = DomainNet(info["channels"], info["classes"])
        net.load_state_dict(load_file(str(weights)))
        return net.eval(), key
    kind = "classifier" if labels is not None else "autoencoder"
    # said even without a progress bar: on a CPU this takes minutes the first time, and nothing else is printed
    print(f"training the domain {kind} on {len(images):,} reference images, once: it is cached in {folder}",
          file=sys.stderr, flush=True)
    net = train_domain_net(images, labels, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "domain.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, weights)
    meta.write_text(json.dumps({"channels": net.channels, "classes": net.classes, "version": VERSION}) + "\n")
    return net, key
