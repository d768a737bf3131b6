"""Image data: every source (folder, zip, npz/npy, named or built-in set) decoded once
into a uint8 tensor with labels, checks and the geometry needed to undo the resizing.

    >>> from ganforge.data import load_dataset
    >>> data = load_dataset("builtin:shapes")
    >>> data.images.shape, data.class_names[:2]
    (torch.Size([20000, 3, 32, 32]), ['circle', 'square'])
"""

from ganforge.data.geometry import Geometry
from ganforge.data.named import NAMED_DATASETS
from ganforge.data.sources import (
    BUILTIN_DATASETS,
    DEFAULT_DATASET,
    IMAGE_EXTENSIONS,
    DataInfo,
    ImageDataset,
    dataset_info,
    load_dataset,
    read_arrays,
)

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_DATASET",
    "IMAGE_EXTENSIONS",
    "NAMED_DATASETS",
    "DataInfo",
    "Geometry",
    "ImageDataset",
    "dataset_info",
    "load_dataset",
    "read_arrays",
]
