"""Checks and adjustments made once, before a run starts or resumes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..config import Config, TrainConfig
from ..validation import check_resume_changes, validate
from ..data import ImageDataset
from ..errors import GanforgeError


def data_fingerprint(images: torch.Tensor) -> str:
    """A short hash of the training images, to refuse resuming on different data."""
    return hashlib.blake2b(images.cpu().numpy().tobytes(), digest_size=8).hexdigest()


def fit_batch_to_data(t: TrainConfig, n_images: int) -> str | None:
    """Few-shot data: a batch larger than the data set becomes the whole data set. -> a notice, or None."""
    if n_images < 2:
        raise GanforgeError(f"the data set has {n_images} image(s); training needs at least 2")
    if n_images >= t.batch_size:
        return None
    notice = (f"the data set has {n_images} images, fewer than one batch of {t.batch_size}: training with "
              f"batches of {n_images} (set train.batch_size to choose; small data sets also benefit from "
              "reg.augment=translation,cutout,colour with reg.ada=true)")
    t.batch_size = n_images
    return notice


def check_saved_config(run_dir: Path, cfg: Config) -> None:
    """On resume, only options that do not alter the training maths may differ from config.json."""
    saved_path = Path(run_dir) / "config.json"
    if saved_path.is_file():  # else a run folder written by hand or by an older version: the checkpoint decides
        check_resume_changes(validate(Config.load(saved_path)), cfg)


def count_classes(data: ImageDataset) -> int:
    """The number of classes of labelled data, for a class-conditional model."""
    if data.labels is None:
        raise GanforgeError(f"model.conditional needs labelled data (class folders, an npz with 'labels', or a "
                            f"named set); {data.source} has no labels")
    return max(len(data.class_names), int(data.labels.max()) + 1)
