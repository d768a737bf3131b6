"""Named data sets (``mnist``, ``fashion-mnist``, ``cifar10``), downloaded once and cached.

The files are fetched from their canonical locations into
``<cache>/datasets/<name>/`` (cache: ``cache_dir``, else ``$GANFORGE_CACHE``, else
``~/.cache/ganforge``; see :mod:`ganforge.cache`) and every file is checked against a
known SHA-256 before it is parsed, so a changed or damaged file is never used silently.
Downloads (:func:`ganforge.cache.download`) go to a temporary file in the same folder
and are moved into place only once complete and verified. On a machine without
internet, place the files in that folder by hand; the error message names them.

Formats are parsed with numpy alone (no pickle): MNIST and Fashion-MNIST are gzipped
IDX files; CIFAR-10 is the "binary version" tarball, one label byte followed by 3,072
image bytes (R, G, B planes of 32x32) per record.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganforge.cache import DownloadError, cache_root, download, sha256_of
from ganforge.errors import DataError


@dataclass(frozen=True)
class NamedSpec:
    """Where a named data set comes from and which files make each split."""

    title: str
    urls: tuple[str, ...]  # base URLs tried in order (the file name is appended)
    splits: dict[str, tuple[str, ...]]  # split -> files it needs
    class_names: tuple[str, ...]


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"

SPECS: dict[str, NamedSpec] = {
    "mnist": NamedSpec(
        title="MNIST handwritten digits, 28x28 gray (60,000 train / 10,000 test)",
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        splits=_MNIST_FILES,
        class_names=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": NamedSpec(
        title="Fashion-MNIST clothing, 28x28 gray (60,000 train / 10,000 test)",
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        splits=_MNIST_FILES,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"),
    ),
    "cifar10": NamedSpec(
        title="CIFAR-10 photos, 32x32 RGB (50,000 train / 10,000 test)",
        urls=("https://www.cs.toronto.edu/~kriz/",),
        splits={"train": (_CIFAR10_ARCHIVE,), "test": (_CIFAR10_ARCHIVE,)},
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
}

# SHA-256 of every file, as published for the canonical downloads.
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        _CIFAR10_ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    },
}

NAMED_DATASETS: dict[str, str] = {name: spec.title for name, spec in SPECS.items()}
SPLITS = ("train", "test")


def parse_named(source: str) -> tuple[str, str] | None:
    """``"mnist:test"`` -> ``("mnist", "test")``; ``None`` when not a named data set."""
    name, _, split = source.strip().lower().partition(":")
    if name not in SPECS:
        return None
    split = split or "train"
    if split not in SPECS[name].splits:
        raise DataError(f"unknown split {split!r} for {name}: use one of {', '.join(SPECS[name].splits)}")
    return name, split


def default_cache_dir() -> Path:
    """The cache root when no ``cache_dir`` is given (see :func:`ganforge.cache.cache_root`)."""
    return cache_root()


def dataset_folder(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding the files of a named data set."""
    return cache_root(cache_dir) / "datasets" / name


def load_named(
    name: str, split: str = "train", cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images ``(N, H, W)`` or ``(N, H, W, 3)`` uint8, labels ``(N,)`` int64 and class names.

    Downloads (and verifies) the files on first use.
    """
    spec = SPECS[name]
    folder = dataset_folder(name, cache_dir)
    paths = ensure_files(name, spec.splits[split], folder, progress)
    if name == "cifar10":
        images, labels = _read_cifar10(paths[0], split)
    else:
        images = _read_idx(paths[0], expect_dims=3)
        labels = _read_idx(paths[1], expect_dims=1).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    return images, labels, list(spec.class_names)


# ---------------------------------------------------------------------------
# download and verification


def ensure_files(name: str, files: tuple[str, ...], folder: Path, progress: bool = True) -> list[Path]:
    """Make sure every file is in ``folder`` with the right SHA-256, downloading what is missing."""
    checksums = SHA256[name]
    paths = []
    for i, file in enumerate(files):
        path = folder / file
        expected = checksums[file]
        if not path.exists():
            try:
                download([base + file for base in SPECS[name].urls], path, expected, progress=progress)
            except DownloadError as e:
                reasons = "; ".join(f"{url}: {reason}" for url, reason in e.failures)
                missing = [f for f in files[i:] if not (folder / f).exists()]
                wanted = ", ".join(f"{f} (sha256 {checksums[f]})" for f in missing)
                raise DataError(f"could not download {name} ({reasons}). Place {wanted} in {folder}/") from None
        else:
            actual = sha256_of(path)
            if actual != expected:
                raise DataError(
                    f"{path} has sha256 {actual}, expected {expected}: the file is damaged or not the "
                    f"{name} file; delete it to download it again"
                )
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# parsing

_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned-byte data with 3 or 1 dimensions


def _read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes: (N, rows, cols) or (N,) uint8."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable gzip file: {e}") from None
    header = 4 + 4 * expect_dims
    if len(data) < header:
        raise DataError(f"{path} is too short to be an IDX file")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_MAGIC[expect_dims]:
        raise DataError(f"{path} has IDX magic number {magic:#010x}, expected {_IDX_MAGIC[expect_dims]:#010x}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expect_dims)]
    expected_len = header + int(np.prod(dims))
    if len(data) != expected_len:
        raise DataError(f"{path} holds {len(data)} bytes, expected {expected_len} for shape {tuple(dims)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


_CIFAR10_RECORD = 1 + 3 * 32 * 32
_CIFAR10_MEMBERS = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}


def _read_cifar10(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse the CIFAR-10 binary tarball: (N, 32, 32, 3) uint8 images, (N,) int64 labels."""
    wanted = _CIFAR10_MEMBERS[split]
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    blobs[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable tar.gz file: {e}") from None
    missing = [m for m in wanted if m not in blobs]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}")
    images, labels = [], []
    for member in wanted:
        data = blobs[member]
        if len(data) % _CIFAR10_RECORD:
            raise DataError(f"{member} in {path} is {len(data)} bytes, not a whole number of records")
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR10_RECORD)
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # planes -> (n, 32, 32, 3)
    labels_all = np.concatenate(labels)
    if labels_all.size and labels_all.max() > 9:
        raise DataError(f"{path} has label {labels_all.max()} outside 0..9")
    return np.ascontiguousarray(np.concatenate(images)), labels_all


__all__ = ["NAMED_DATASETS", "SHA256", "SPECS", "load_named", "parse_named", "dataset_folder", "default_cache_dir"]
