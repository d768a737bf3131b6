"""Image files in folders and zip archives: listing them, loading them into an
:class:`~ganforge.data.types.ImageDataset` and describing them.

Folders and zip archives hold image files (png, jpg/jpeg, bmp, gif, webp, tif/tiff,
any case). Hidden files and folders and ``__MACOSX`` are ignored, as are other files.
Files are taken in sorted path order, so results are deterministic. A single folder
that wraps everything (``cifar10/train/...``) is looked through. When every image lies
inside a first-level subfolder and there are at least two of them, the subfolder names
are the classes (sorted; the label is the index); otherwise the set is unlabelled.

Each file is decoded by :mod:`ganforge.data.decode` and fitted by
:mod:`ganforge.data.policy`. Files that cannot be read are skipped and listed in
``ImageDataset.skipped`` (with a warning), unless more than ``max_bad_fraction`` of them
fail, which is an error.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganforge.data import decode, policy
from ganforge.data.geometry import Geometry
from ganforge.data.types import DataInfo, ImageDataset
from ganforge.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

_PROGRESS_MIN_FILES = 200  # show a progress bar above this many files
_KEEP_BYTES = 1024 * 1024 * 1024  # small images kept decoded from the first pass (see load_files)


# ---------------------------------------------------------------------------
# listing


@dataclass
class _Entry:
    name: str  # path inside the source, with "/" separators; used in messages
    ref: object  # filesystem path (str) or zipfile.ZipInfo


class FileSource:
    """The image files of a folder or zip archive, in sorted order, with their classes."""

    def __init__(self, source: str, entries: list[_Entry], others: list[str], archive: zipfile.ZipFile | None):
        self.source = source
        self.archive = archive
        self.entries = sorted(entries, key=lambda e: e.name)
        if not self.entries:
            hint = f"; found {len(others)} other file(s), e.g. {sorted(others)[0]}" if others else ""
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise DataError(f"no image files in {source} (looked for {exts}){hint}")
        self.class_of, self.class_names = _classes([e.name for e in self.entries])

    @classmethod
    def open(cls, kind: str, path: Path, source: str) -> "FileSource":
        if kind == "folder":
            entries, others = [], []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not _hidden(d)]
                rel = Path(dirpath).relative_to(path).as_posix()
                for f in filenames:
                    if _hidden(f):
                        continue
                    name = f if rel == "." else f"{rel}/{f}"
                    if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                        entries.append(_Entry(name, os.path.join(dirpath, f)))
                    else:
                        others.append(name)
            return cls(source, entries, others, None)
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{source} is not a readable zip archive: {e}") from None
        entries, others = [], []
        for info in archive.infolist():
            name = info.filename.replace("\\", "/")
            if info.is_dir() or any(_hidden(part) for part in name.split("/")):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                entries.append(_Entry(name, info))
            else:
                others.append(name)
        try:
            return cls(source, entries, others, archive)
        except DataError:
            archive.close()
            raise

    def read(self, entry: _Entry):
        """Something ``Image.open`` accepts: a path, or the member's bytes."""
        if self.archive is None:
            return entry.ref
        return io.BytesIO(self.archive.read(entry.ref))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.archive is not None:
            self.archive.close()


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _classes(names: list[str]) -> tuple[list[str] | None, list[str]]:
    """Class of each file from its first-level folder, after looking through wrapper folders.

    Returns (class name per file, sorted class names), or (None, []) when unlabelled.
    """
    parts = [n.split("/") for n in names]
    depth = 0
    while all(len(p) > depth + 1 for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1  # a single folder wraps everything: look inside it
    if all(len(p) > depth + 1 for p in parts):
        tops = sorted({p[depth] for p in parts})
        if len(tops) >= 2:
            return [p[depth] for p in parts], tops
    return None, []


# ---------------------------------------------------------------------------
# loading and inspecting


def load_files(
    files: FileSource, source, resolution, channels, fit, max_bad_fraction, limit, progress
) -> ImageDataset:
    """Decode the image files of a folder or zip archive and fit them to the square.

    The size policy needs every image size before any image can be fitted, so the files
    are read in two passes. The first pass reads every header and decodes the small
    images right away, keeping them (up to ``_KEEP_BYTES`` in all) so that a typical
    data set is decoded exactly once. The second pass decodes the rest, large photos
    at a reduced JPEG scale where that loses nothing at the target size.
    """
    entries = files.entries[:limit]
    total = len(entries)
    skipped: list[tuple[str, str]] = []
    headers: dict[int, tuple[int, int, int]] = {}  # index -> (height, width, channels)
    decoded: dict[int, np.ndarray] = {}  # index -> (H, W, C) uint8, decoded in the first pass
    budget = _KEEP_BYTES
    with _progress_bar(total, "decoding images", progress) as bar:
        for i, entry in enumerate(entries):
            try:
                h, w, c, image = decode.read_image(files.read(entry), keep_bytes=budget)
            except Exception as e:  # noqa: BLE001 - any failure to read a file means "unreadable"
                skipped.append((entry.name, decode.unreadable_reason(e)))
            else:
                headers[i] = (h, w, c)
                if image is not None:
                    decoded[i] = image
                    budget -= image.nbytes
            bar.update(1)
    _check_unreadable(skipped, total, max_bad_fraction, source)

    sizes = Counter((h, w) for h, w, _ in headers.values())
    channel_counts = Counter(c for _, _, c in headers.values())
    if channels is None:
        if len(channel_counts) > 1:
            raise DataError(f"{source}: {policy.mixed_channels(channel_counts)}")
        channels = next(iter(channel_counts))
    resolution = resolution or policy.auto_resolution(sizes)
    fit = policy.auto_fit(sizes, resolution) if fit == "auto" else fit

    fitter = policy.Fitter(total, resolution, channels, fit)
    first_pass = set(decoded)  # handed to the fitter now (it may hold some until finish)
    for i in list(decoded):
        image = decoded.pop(i)
        fitter.add(i, image, image.shape[:2])
    rest = [i for i in headers if i not in first_pass]
    with _progress_bar(len(rest), "decoding large images", progress) as bar:
        for i in rest:
            h, w, _ = headers[i]
            try:
                shrink_to = decode.draft_target(h, w, resolution, fit)
                image, drafted = decode.decode_image(files.read(entries[i]), shrink_to)
            except Exception as e:  # noqa: BLE001
                skipped.append((entries[i].name, decode.unreadable_reason(e)))
            else:
                fitter.add(i, image, (h, w) if drafted else image.shape[:2])
            bar.update(1)
    images, good = fitter.finish()  # (N, C, R, R), (total,) bool

    _check_unreadable(skipped, total, max_bad_fraction, source)
    if skipped:
        name, reason = skipped[0]
        warnings.warn(
            f"{source}: skipped {len(skipped)} of {total} files that could not be read (first: {name}: {reason})",
            stacklevel=3,
        )
    labels, class_names = None, []
    if files.class_of is not None:
        index = {name: k for k, name in enumerate(files.class_names)}
        all_labels = np.array([index[c] for c in files.class_of[:total]], dtype=np.int64)
        labels = torch.from_numpy(all_labels[good])
        class_names = list(files.class_names)
    height, width = next(iter(sizes)) if len(sizes) == 1 else (None, None)
    geometry = Geometry(resolution, height, width, fit, channels)
    return ImageDataset(images, labels, class_names, geometry, source, skipped)


def inspect_files(files: FileSource, source: str, progress: bool) -> DataInfo:
    """Counts, sizes, channels and classes of the files; unreadable files are reported, never raised."""
    sizes, channel_counts, per_class = Counter(), Counter(), Counter()
    unreadable = []
    count = 0
    with _progress_bar(len(files.entries), "checking images", progress) as bar:
        for i, entry in enumerate(files.entries):
            bar.update(1)
            try:
                h, w, c = decode.check_image(files.read(entry))
            except Exception as e:  # noqa: BLE001 - reported, never raised
                unreadable.append((entry.name, decode.unreadable_reason(e)))
                continue
            count += 1
            sizes[(h, w)] += 1
            channel_counts[c] += 1
            if files.class_of is not None:
                per_class[files.class_of[i]] += 1
    classes = {name: per_class[name] for name in files.class_names}
    return DataInfo(source, count, sizes, channel_counts, classes, unreadable)


def _check_unreadable(skipped, total, max_bad_fraction, source) -> None:
    if not skipped:
        return
    name, reason = skipped[0]
    if len(skipped) == total:
        raise DataError(f"none of the {total} image files in {source} could be read (first: {name}: {reason})")
    if len(skipped) > max_bad_fraction * total:
        raise DataError(
            f"{len(skipped)} of {total} files could not be read (first: {name}: {reason}); "
            f"fix or remove them, or allow more with max_bad_fraction (now {max_bad_fraction:g})"
        )


def _progress_bar(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit="img", disable=not (enabled and total > _PROGRESS_MIN_FILES))


__all__ = ["IMAGE_EXTENSIONS", "FileSource", "inspect_files", "load_files"]
