"""Image sets held in numpy arrays: ``.npz`` / ``.npy`` files, and the arrays of the
named and built-in sets.

An array file holds the images as N x H x W, N x H x W x C or N x C x H x W (C from 1
to 4), as uint8 (other integers within 0..255 are cast) or floats in 0..1 (scaled by
255). In an ``.npz`` file the images are the array named ``images`` (else ``x``,
``x_train``, ``arr_0``, or the only array), the labels ``labels`` (else ``y``, or
``y_train`` next to ``x_train``) and the class names ``class_names``. Pickled Python
objects are never loaded.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ganforge.data import policy
from ganforge.data.geometry import Geometry, fit_images
from ganforge.data.types import ImageDataset
from ganforge.errors import DataError


def read_array_file(path: Path, limit: int | None):
    """-> images (N, H, W, C), labels (N,) int64 or None, class names ([] when unlabelled)."""
    not_plain = f"{path} is not a plain numpy array file (pickled Python objects are never loaded)"
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix.lower() == ".npy" else None)
    except ValueError as e:
        if "pickle" in str(e).lower() or "python objects" in str(e).lower():
            raise DataError(not_plain) from None
        raise DataError(f"cannot read {path}: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    labels = class_names = None
    if isinstance(data, np.ndarray):
        images = data
    else:
        with data:
            keys = list(data.files)
            image_key = next((k for k in ("images", "x", "x_train", "arr_0") if k in keys), None)
            if image_key is None:
                if len(keys) != 1:
                    listed = ", ".join(keys)
                    raise DataError(f"{path}: cannot tell which array holds the images (keys: {listed}); "
                                    "name it 'images'")
                image_key = keys[0]
            label_keys = ("labels", "y") + (("y_train",) if image_key == "x_train" else ())
            label_key = next((k for k in label_keys if k in keys), None)
            try:
                images = data[image_key]
                labels = data[label_key] if label_key else None
                if "class_names" in keys and data["class_names"].dtype.kind in "US":
                    class_names = [str(s) for s in data["class_names"]]
            except ValueError:
                raise DataError(not_plain) from None
    images = to_nhwc(images, path)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: labels must be {len(images)} integers (one per image), "
                f"got {labels.dtype} array of shape {labels.shape}"
            )
        if labels.size and labels.min() < 0:
            raise DataError(f"{path}: labels must not be negative (found {labels.min()})")
        labels = labels.astype(np.int64)
    # the classes are decided on the whole file, so a limited load keeps every class name
    class_names = _label_names(labels, class_names)
    if not class_names:
        labels = None
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    return images, labels, class_names


def to_nhwc(images: np.ndarray, where) -> np.ndarray:
    """Accept N x H x W, N x H x W x C or N x C x H x W (C = 1..4): return (N, H, W, C).

    The dtype is checked (and converted to uint8) by :func:`_to_uint8` later, on the
    limited array only.
    """
    shape = images.shape
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and 1 <= shape[-1] <= 4:
        pass
    elif images.ndim == 4 and 1 <= shape[1] <= 4 and shape[-1] > 4:
        images = images.transpose(0, 2, 3, 1)
    else:
        raise DataError(
            f"{where}: cannot read images from an array of shape {shape}; expected N x H x W, "
            f"N x H x W x C or N x C x H x W with C from 1 to 4"
        )
    if images.shape[0] == 0:
        raise DataError(f"{where}: the array holds no images")
    return images


def _to_uint8(images: np.ndarray, where) -> np.ndarray:
    """uint8 stays; integers within 0..255 are cast; floats within 0..1 are scaled by 255."""
    kind = images.dtype.kind
    if images.dtype == np.uint8:
        if isinstance(images, np.memmap) or not images.flags.writeable:
            return np.array(images)  # own the pixels: never hand out a view of a mapped file
        return np.ascontiguousarray(images)
    if kind in "iu":
        lo, hi = int(images.min()), int(images.max())
        if 0 <= lo and hi <= 255:
            return images.astype(np.uint8)
        raise DataError(f"{where}: {images.dtype} pixel values span {lo}..{hi}; expected uint8 (0..255)")
    if kind == "f":
        lo, hi = float(images.min()), float(images.max())
        if 0.0 <= lo and hi <= 1.0:
            return np.rint(images * 255.0).astype(np.uint8)
        raise DataError(
            f"{where}: {images.dtype} pixel values span {lo:g}..{hi:g}; expected uint8 (0..255) or floats in 0..1"
        )
    raise DataError(f"{where}: unsupported pixel type {images.dtype}; expected uint8 (0..255) or floats in 0..1")


def _label_names(labels: np.ndarray, class_names: list[str] | None) -> list[str]:
    """Class names for integer labels; [] when there are fewer than two classes."""
    if labels is None or len(np.unique(labels)) < 2:
        return []
    count = int(labels.max()) + 1
    if class_names is not None and len(class_names) >= count:
        return list(class_names)
    return [str(i) for i in range(count)]


def from_arrays(images, labels, class_names, source, resolution, channels, fit) -> ImageDataset:
    """Fit an in-memory (N, H, W, C) array set into an :class:`ImageDataset`.

    ``labels`` are kept when ``class_names`` is not empty.
    """
    images = _to_uint8(np.asarray(images), source)
    n, h, w, c = images.shape
    channels = channels or c
    images = policy.convert_channels(images, channels)
    resolution = resolution or policy.auto_resolution(Counter({(h, w): n}))
    fit = policy.auto_fit(Counter({(h, w): n}), resolution) if fit == "auto" else fit
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W)
    tensor = tensor.contiguous() if (h, w) == (resolution, resolution) else fit_images(tensor, resolution, fit)

    labelled = labels is not None and bool(class_names)
    label_tensor = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)) if labelled else None
    geometry = Geometry(resolution, h, w, fit, channels)
    return ImageDataset(tensor, label_tensor, list(class_names) if labelled else [], geometry, source, [])


__all__ = ["from_arrays", "read_array_file", "to_nhwc"]
