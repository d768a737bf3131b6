"""The Inception-v3 network that defines FID (and the Inception Score), in plain PyTorch.

FID is defined with the TensorFlow Inception-v3 graph of 2015-12-05; its PyTorch port is the
weights file :data:`INCEPTION_WEIGHTS_FILE`, published at :data:`INCEPTION_WEIGHTS_URL`.
This module rebuilds that network layer for layer, with the same state-dict key names, so the
file loads with ``strict=True``. It differs from the usual ImageNet Inception-v3 in four ways
that change the numbers and must be kept:

* 1008 output classes instead of 1000 (no auxiliary head);
* the average pools inside the A, C and first E blocks do not count the zero padding
  (``count_include_pad=False``), as in TensorFlow;
* the last E block (``Mixed_7c``) uses a max pool in its pool branch;
* inputs are uint8 images mapped to [0, 1], resized bilinearly to 299x299
  (``align_corners=False``), then scaled to [-1, 1].

The network always runs in inference mode and in float32 (autocast and TF32 are switched off
inside :meth:`FIDInceptionV3.forward`) so that feature statistics are reproducible.

The weights (about 96 MB) are looked up in ``<cache>/weights/`` (cache: ``cache_dir``, else
``$GANFORGE_CACHE``, else ``~/.cache/ganforge``; see :mod:`ganforge.cache`) and downloaded there
on first use, to a temporary file that is moved into place only once its SHA-256 matches. On a machine without
internet, place the file there by hand; the error message names the URL and the path.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import DownloadError, cache_root, download, sha256_of
from ..devices import exact_float32
from ..errors import GanforgeError

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_WEIGHTS_FILE
)
# Full SHA-256 of the published file; its first 8 hex digits are the suffix of the file name.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


# ---------------------------------------------------------------------------
# building blocks


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3, as in TensorFlow), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """Same-size 3x3 average pool that ignores the zero padding (TensorFlow's behaviour)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1. Out: 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # 64
        b5 = self.branch5x5_2(self.branch5x5_1(x))  # 64
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        bp = self.branch_pool(_avg_pool_3x3(x))  # pool_features
        return torch.cat([b1, b5, b3, bp], 1)


class BlockB(nn.Module):
    """Grid reduction 35x35 -> 17x17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2. Out: 480 + in_channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)  # 384
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        bp = F.max_pool2d(x, kernel_size=3, stride=2)  # in_channels
        return torch.cat([b3, bd, bp], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1). Out: 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # 192
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # 192
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))  # 192
        bp = self.branch_pool(_avg_pool_3x3(x))  # 192
        return torch.cat([b1, b7, bd, bp], 1)


class BlockD(nn.Module):
    """Grid reduction 17x17 -> 8x8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2. Out: 512 + in_channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # 320
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))  # 192
        bp = F.max_pool2d(x, kernel_size=3, stride=2)  # in_channels
        return torch.cat([b3, b7, bp], 1)


class BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs. Out: 2048 channels.

    ``pool="avg"`` (padding not counted) for ``Mixed_7b``; ``pool="max"`` for ``Mixed_7c``, as in
    the TensorFlow graph that defines FID.
    """

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)  # 320
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)  # 768
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)  # 768
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        bp = self.branch_pool(pooled)  # 192
        return torch.cat([b1, b3, bd, bp], 1)


# ---------------------------------------------------------------------------
# the network


class FIDInceptionV3(nn.Module):
    """Inception-v3 as used by FID: uint8 images -> (2048 pool features, 1008 logits).

    The constructor builds the architecture with random weights; use :func:`load_inception`
    for the real network. The module stays in inference mode (``train()`` is a no-op) because
    its BatchNorm layers must use their stored statistics.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, channels_7x7=128)
        self.Mixed_6c = BlockC(768, channels_7x7=160)
        self.Mixed_6d = BlockC(768, channels_7x7=160)
        self.Mixed_6e = BlockC(768, channels_7x7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="avg")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """Always inference mode: the features are those of the fixed network."""
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) float in [-1, 1] -> (N, 2048) pool features."""
        x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # N x 192 x 35 x 35
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)  # N x 288 x 35 x 35
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)  # N x 768 x 17 x 17
        x = self.Mixed_6c(x)  # N x 768 x 17 x 17
        x = self.Mixed_6d(x)  # N x 768 x 17 x 17
        x = self.Mixed_6e(x)  # N x 768 x 17 x 17
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        x = self.Mixed_7c(x)  # N x 2048 x 8 x 8
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # N x 2048

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, C, H, W), C in {1, 3}, any H and W -> pool features (N, 2048), logits (N, 1008).

        Softmax over the logits gives the class probabilities of the Inception Score.
        """
        if images.dtype != torch.uint8:
            raise TypeError(f"FIDInceptionV3 takes uint8 images, got {images.dtype}")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        with exact_float32(images.device):
            x = images.to(torch.float32) / 255  # N x C x H x W in [0, 1]
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)  # gray -> RGB
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            x = 2 * x - 1  # N x 3 x 299 x 299 in [-1, 1]
            features = self.features(x)
            logits = self.fc(features)  # N x 1008
        return features, logits


# ---------------------------------------------------------------------------
# weights


def weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the weights file is looked for and downloaded to."""
    return cache_root(cache_dir) / "weights" / INCEPTION_WEIGHTS_FILE


def inception_available(cache_dir: str | os.PathLike | None = None) -> bool:
    """True when the weights file is already on disk (nothing is downloaded or verified)."""
    return weights_path(cache_dir).is_file()


def load_inception(
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    verify: bool = True,
) -> FIDInceptionV3:
    """The FID Inception network with its published weights, in inference mode, on the CPU.

    ``weights``: a path to the weights file; by default it is looked for in the cache and
    downloaded there when missing (unless ``download=False``). ``verify``: check the file's
    SHA-256 against the published one (turn off only for a deliberately different file).
    Raises :class:`GanforgeError` when the file is missing, damaged or not the right network.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GanforgeError(f"FID Inception weights file {path} not found; download {INCEPTION_WEIGHTS_URL}")
    else:
        path = weights_path(cache_dir)
        if not path.is_file():
            if not download:
                raise GanforgeError(
                    f"FID Inception weights not found; download {INCEPTION_WEIGHTS_URL} and place it at {path}"
                )
            _fetch(path, progress)
            verify = False  # just checked while downloading
    if verify:
        actual = sha256_of(path)
        if actual != INCEPTION_WEIGHTS_SHA256:
            raise GanforgeError(
                f"{path} has sha256 {actual}, expected {INCEPTION_WEIGHTS_SHA256}: the file is damaged or not the "
                f"FID Inception weights; replace it with {INCEPTION_WEIGHTS_URL}"
            )
    model = FIDInceptionV3()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise GanforgeError(f"{path} is not a readable weights file: {_one_line(e)}") from None
    if not isinstance(state, dict):
        raise GanforgeError(f"{path} does not hold a state dict")
    try:
        model.load_state_dict(_map_file_keys(state, model), strict=True)
    except RuntimeError as e:
        raise GanforgeError(f"{path} does not hold the FID Inception-v3 weights: {_one_line(e)}") from None
    return model.requires_grad_(False)


def _map_file_keys(state: dict, model: nn.Module) -> dict:
    """The file's tensors under the model's key names.

    The module names above are those of the file, so the map is the identity except that
    files saved before BatchNorm counted its batches lack ``*.num_batches_tracked``
    (unused in inference; filled with 0), and an auxiliary head, if present, is dropped.
    """
    out = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)
    return out


def _fetch(dest: Path, progress: bool) -> None:
    """Download the weights to ``dest``, or raise GanforgeError naming the URL and the path."""
    try:
        download(INCEPTION_WEIGHTS_URL, dest, INCEPTION_WEIGHTS_SHA256, desc="FID Inception weights", progress=progress)
    except DownloadError as e:
        reason = "; ".join(reason for _, reason in e.failures)
        raise GanforgeError(
            f"could not download the FID Inception weights ({reason}); "
            f"download {INCEPTION_WEIGHTS_URL} and place it at {dest}"
        ) from None


def _one_line(e) -> str:
    return " ".join(str(e).split())
