"""Reading image data sets into one uint8 tensor: folders, zip archives, numpy files,
named sets and built-in sets.

Every source ends as an :class:`ImageDataset`: ``images`` ``(N, C, R, R)`` uint8 on
the CPU, optional integer labels, and the :class:`~ganforge.data.geometry.Geometry`
that says how the images were fitted to the square training size ``R``.

Sources
-------
``load_dataset(source)`` accepts, checked in this order:

* an existing path: a folder (searched recursively), a ``.zip`` archive (read in
  place, nothing is extracted), or a ``.npz`` / ``.npy`` array file;
* ``builtin:<name>``: a procedural set from :mod:`ganforge.data.synthetic`;
* a named set, ``mnist``, ``fashion-mnist`` or ``cifar10``, with an optional split
  (``mnist:test``; default ``train``), downloaded once by :mod:`ganforge.data.named`.

This module only dispatches; the rules live next to the code that applies them:

* :mod:`ganforge.data.files`: which files of a folder or zip archive are read, classes
  from subfolders, unreadable files;
* :mod:`ganforge.data.decode`: how an image file is decoded (colour models, EXIF,
  16-bit and float gray);
* :mod:`ganforge.data.policy`: channel conversion, the automatic resolution and the
  ``fit`` modes (``auto``, ``pad``, ``crop``, ``resize``);
* :mod:`ganforge.data.arrays`: ``.npz`` / ``.npy`` layouts and pixel types.
"""

from __future__ import annotations

import operator
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ganforge.data import arrays, files, named, synthetic
from ganforge.data.files import IMAGE_EXTENSIONS
from ganforge.data.geometry import is_valid_resolution
from ganforge.data.policy import AUTO_RESOLUTION_RANGE, FIT_CHOICES, convert_channels
from ganforge.data.types import DataInfo, ImageDataset
from ganforge.errors import DataError

BUILTIN_DATASETS: dict[str, str] = {
    "builtin:shapes": "20,000 RGB 32x32 images of five coloured shapes on gradients (labelled)",
}
DEFAULT_DATASET = "builtin:shapes"


# ---------------------------------------------------------------------------
# public entry points


def load_dataset(
    source: str,
    resolution: int | None = None,
    channels: int | None = None,
    fit: str = "auto",
    max_bad_fraction: float = 0.1,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Read ``source`` into an :class:`ImageDataset` (see the module docstring for the rules).

    Raises :class:`DataError` with a one-line message for anything the user can fix.
    """
    source = str(source)
    resolution, channels, limit = _check_options(resolution, channels, fit, max_bad_fraction, limit)
    kind, target = _resolve(source)
    if kind in ("folder", "zip"):
        with files.FileSource.open(kind, target, source) as file_source:
            return files.load_files(file_source, source, resolution, channels, fit, max_bad_fraction, limit, progress)
    images, labels, class_names = _read_arrays(kind, target, source, limit, cache_dir, progress, resolution)
    if kind == "builtin":
        fit = "pad"  # rendered at the requested size: nothing to fit
    return arrays.from_arrays(images, labels, class_names, source, resolution, channels, fit)


def read_arrays(source: str, cache_dir: str | os.PathLike | None = None, progress: bool = True):
    """An array, named or built-in source as stored, before any fitting: images (N, H, W, C), labels (N,)
    int64 or None, class names. None for folders and zip archives (their images are files of any size)."""
    source = str(source)
    kind, target = _resolve(source)
    if kind in ("folder", "zip"):
        return None
    return _read_arrays(kind, target, source, None, cache_dir, progress)


def dataset_info(source: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> DataInfo:
    """Describe ``source`` without fitting it: counts, sizes, channels, classes, unreadable files.

    Every file is decoded (at reduced scale where the format allows) so that damaged
    files are found; they are reported, never raised. Raises :class:`DataError` only
    when the source is missing or holds no images at all.
    """
    source = str(source)
    kind, target = _resolve(source)
    if kind in ("folder", "zip"):
        with files.FileSource.open(kind, target, source) as file_source:
            return files.inspect_files(file_source, source, progress)
    images, labels, class_names = _read_arrays(kind, target, source, None, cache_dir, progress)
    n, h, w, c = images.shape
    classes: dict[str, int] = {}
    if labels is not None and class_names:
        counts = np.bincount(labels, minlength=len(class_names))
        classes = {class_names[i]: int(k) for i, k in enumerate(counts)}
    return DataInfo(source, n, Counter({(h, w): n}), Counter({c: n}), classes, [])


def _read_arrays(kind, target, source, limit, cache_dir, progress, resolution=None):
    """The arrays of an npz/npy, named or built-in source (built-in ones rendered at ``resolution``)."""
    if kind in ("npz", "npy"):
        return arrays.read_array_file(target, limit)
    if kind == "named":
        name, split = target
        images, labels, class_names = named.load_named(name, split, cache_dir, progress)
        return arrays.to_nhwc(images[:limit], source), labels[:limit], class_names
    count = synthetic.DEFAULT_COUNT if limit is None else limit
    images, labels = synthetic.make_shapes(count, resolution or synthetic.NATIVE_SIZE)
    return images, labels, list(synthetic.SHAPE_CLASSES)


# ---------------------------------------------------------------------------
# options and source resolution


def _check_options(resolution, channels, fit, max_bad_fraction, limit):
    def as_int(value, what):
        try:
            return None if value is None else operator.index(value)
        except TypeError:
            raise DataError(f"{what} must be a whole number, got {value!r}") from None

    resolution = as_int(resolution, "resolution")
    if resolution is not None and not is_valid_resolution(resolution):
        raise DataError(f"resolution must be a power of two from 16 to 256 (16, 32, 64, 128, 256), got {resolution}")
    channels = as_int(channels, "channels")
    if channels is not None and channels not in (1, 2, 3, 4):
        raise DataError(f"channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA), got {channels}")
    if fit not in FIT_CHOICES:
        raise DataError(f"fit must be one of {', '.join(FIT_CHOICES)}, got {fit!r}")
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise DataError(f"max_bad_fraction must be between 0 and 1, got {max_bad_fraction}")
    limit = as_int(limit, "limit")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    return resolution, channels, limit


def _resolve(source: str):
    """-> (kind, target): ("folder"|"zip"|"npz"|"npy", Path) | ("named", (name, split)) | ("builtin", name)."""
    path = Path(source).expanduser()
    if source and path.exists():
        if path.is_dir():
            return "folder", path
        suffix = path.suffix.lower()
        if suffix in (".zip", ".npz", ".npy"):
            return suffix[1:], path
        raise DataError(
            f"unsupported data source {source}: expected a folder of images, a .zip, .npz or .npy file, "
            f"or a named data set ({', '.join(named.NAMED_DATASETS)})"
        )
    if source.startswith("builtin:"):
        if source in BUILTIN_DATASETS:
            return "builtin", source
        raise DataError(f"unknown built-in data set {source}: choose from {', '.join(BUILTIN_DATASETS)}")
    parsed = named.parse_named(source)
    if parsed is not None:
        return "named", parsed
    raise DataError(
        f"no such file or folder: {source} (named data sets: {', '.join(named.NAMED_DATASETS)}; "
        f"built-in: {', '.join(BUILTIN_DATASETS)})"
    )


__all__ = [
    "AUTO_RESOLUTION_RANGE",
    "BUILTIN_DATASETS",
    "DEFAULT_DATASET",
    "FIT_CHOICES",
    "IMAGE_EXTENSIONS",
    "DataInfo",
    "ImageDataset",
    "convert_channels",
    "dataset_info",
    "load_dataset",
    "read_arrays",
]
