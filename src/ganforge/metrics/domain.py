"""A data-set-specific feature network: a compact CNN classifier trained on the real labels.

Inception features (trained on ImageNet photos) describe small grayscale sets such as
Fashion-MNIST poorly, and their weights may be unavailable offline. This network is trained
once on the reference data set's own labels and cached by a hash of that data; its pooled
penultimate activations (128 values) are the features for Fréchet distance and related
metrics, and its softmax gives class histograms (mode coverage).
Results from it are reported under their own names (``fd_domain``) and never mixed with
Inception-based numbers.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..models.layers import from_uint8

INPUT_SIZE = 32
FEATURE_DIM = 128
VERSION = 1  # bump when the architecture or training recipe changes: invalidates caches


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DomainNet(nn.Module):
    """(N, C, 32, 32) in [-1, 1] -> logits (N, classes); ``features`` gives (N, 128)."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.channels, self.classes = channels, classes
        self.body = nn.Sequential(
            *_block(channels, 32), *_block(32, 32), nn.MaxPool2d(2),  # (N, 32, 16, 16)
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),  # (N, 64, 8, 8)
            *_block(64, FEATURE_DIM), *_block(FEATURE_DIM, FEATURE_DIM),  # (N, 128, 8, 8)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, 128)
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) of any size -> float (N, C, 32, 32) in [-1, 1]; bilinear resize if needed."""
    x = from_uint8(images)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x


def data_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(images.cpu().numpy().tobytes())
    h.update(labels.cpu().numpy().tobytes())
    h.update(str(VERSION).encode())
    return h.hexdigest()[:16]


def train_domain_net(
    images: torch.Tensor,  # (N, C, H, W) uint8
    labels: torch.Tensor,  # (N,) int64
    epochs: int = 3,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> DomainNet:
    """Train the classifier with Adam and small random shifts (the images move by up to 2 px)."""
    torch.manual_seed(seed)
    classes = int(labels.max()) + 1
    net = DomainNet(images.shape[1], classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = epochs * (len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    x_all = prepare(images)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    with tqdm(total=steps, desc="training domain network", unit="step", disable=not progress) as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), generator=gen)
            for i in range(len(x_all) // batch_size):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                x = _random_shift(x_all[idx], gen)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16()):
                    loss = F.cross_entropy(net(x).float(), labels[idx])
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
    from ..training.runtime import cpu_has_native_bf16

    return cpu_has_native_bf16()


@torch.no_grad()
def extract(net: DomainNet, images: torch.Tensor, batch_size: int = 500, progress: bool = False):
    """uint8 (N, C, H, W) -> (features (N, 128) float32, class probabilities (N, classes))."""
    feats, probs = [], []
    net.eval()
    with tqdm(total=len(images), desc="extracting features", unit="img", disable=not progress) as bar:
        for chunk in images.split(batch_size):
            f = net.features(prepare(chunk))
            feats.append(f)
            probs.append(torch.softmax(net.head(f), dim=1))
            bar.update(len(chunk))
    return torch.cat(feats), torch.cat(probs)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    from ..data.named import default_cache_dir

    return Path(cache_dir) if cache_dir else default_cache_dir()


def load_or_train(
    images: torch.Tensor, labels: torch.Tensor, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> DomainNet:
    """The domain network for this labelled data set, trained once and cached by the data's hash."""
    folder = cache_root(cache_dir) / "features" / f"domain-{data_hash(images, labels)}"
    weights, meta = folder / "domain.safetensors", folder / "domain.json"
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        net = DomainNet(info["channels"], info["classes"])
        net.load_state_dict(load_file(str(weights)))
        return net.eval()
    net = train_domain_net(images, labels, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "domain.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, weights)
    meta.write_text(json.dumps({"channels": net.channels, "classes": net.classes, "version": VERSION}))
    return net
