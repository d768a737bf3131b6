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

Folders and zip archives hold image files (png, jpg/jpeg, bmp, gif, webp, tif/tiff,
any case). Hidden files and folders and ``__MACOSX`` are ignored, as are other files.
Files are taken in sorted path order, so results are deterministic. A single folder
that wraps everything (``cifar10/train/...``) is looked through. When every image lies
inside a first-level subfolder and there are at least two of them, the subfolder names
are the classes (sorted; the label is the index); otherwise the set is unlabelled.

Decoding (Pillow) keeps the colour model of each file: 1 channel for gray, 2 for
gray+alpha, 3 for RGB, 4 for RGBA. Palette images become RGBA when they have
transparency, else RGB; CMYK and YCbCr become RGB; 1-bit becomes gray; 16-bit and
float gray images are scaled to 8 bits (16-bit: value / 257; float: 0..1 -> 0..255).
EXIF orientation is applied; an animated GIF gives its first frame. Files that cannot
be read are skipped and listed in ``ImageDataset.skipped`` (with a warning), unless
more than ``max_bad_fraction`` of them fail, which is an error.

Channels: a data set whose files differ in channel count is an error unless
``channels`` is given; then every image is converted. Gray -> RGB repeats the gray
value; RGB -> gray uses the ITU-R 601 luma weights (as Pillow's ``convert("L")``);
an alpha channel that is dropped is composited onto **white** (logos and icons on a
transparent background keep their look); an alpha channel that is added is opaque.

Size policy
-----------
* ``resolution=None`` (auto): the smallest power of two at least as large as the
  longer side of the most common image size, clamped to 16..64. Larger sizes must be
  asked for explicitly (training cost grows fast with the resolution). An explicit
  resolution must be a power of two from 16 to 256.
* ``fit="auto"``: if every image fits inside the square and each side is at least 3/4
  of it (28x28 -> 32), the images are centred and padded by repeating their edge pixels
  (``pad``: no pixel is resampled and the padding can be cut away exactly);
  otherwise ``crop``.
* ``fit="crop"``: scale so the shorter side equals the resolution, then cut the centre
  square out of the longer side.
* ``fit="pad"``: letterbox: shrink so the longer side fits (never enlarge), then pad to
  the square by repeating the edge pixels.
* ``fit="resize"``: stretch to the square, ignoring the aspect ratio.

Resampling is bicubic with antialiasing (premultiplied alpha), done on batches with
torch. :attr:`Geometry.height` / ``width`` record the original size when all images
share one, so :meth:`Geometry.restore` can map generated samples back to it.
"""

from __future__ import annotations

import io
import math
import operator
import os
import warnings
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from ganforge.data import named, synthetic
from ganforge.data.geometry import Geometry, fit_images, inner_size, is_valid_resolution, smallest_power_of_two
from ganforge.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
FIT_CHOICES = ("auto", "pad", "crop", "resize")
AUTO_RESOLUTION_RANGE = (16, 64)  # the auto resolution is clamped to this range

BUILTIN_DATASETS: dict[str, str] = {
    "builtin:shapes": "20,000 RGB 32x32 images of five coloured shapes on gradients (labelled)",
}
DEFAULT_DATASET = "builtin:shapes"

_PROGRESS_MIN_FILES = 200  # show a progress bar above this many files
_BATCH_IMAGES = 256  # decoded images of one size resized together
_PENDING_BYTES = 64 * 1024 * 1024  # decoded images held for batching before all are fitted
_KEEP_BYTES = 1024 * 1024 * 1024  # small images kept decoded from the first pass (see _load_files)
_KEEP_IMAGE_BYTES = 512 * 512 * 4  # larger images are decoded in the second pass, at reduced scale
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "WEBP"})  # formats whose EXIF is known at open
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


@dataclass
class ImageDataset:
    """A decoded data set, ready for training."""

    images: torch.Tensor  # (N, C, R, R) uint8, CPU, contiguous
    labels: torch.Tensor | None  # (N,) int64, or None when unlabelled / single class
    class_names: list[str]  # [] when unlabelled
    geometry: Geometry
    source: str  # as given by the user
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason) of unreadable files

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class DataInfo:
    """What a data source holds, for ``ganforge data info``."""

    source: str
    count: int  # readable images
    sizes: Counter  # (height, width) -> images
    channels: Counter  # channel count -> images
    classes: dict[str, int]  # class name -> images ({} when unlabelled)
    unreadable: list[tuple[str, str]]  # (file name, reason)

    def format(self) -> str:
        """A short human-readable table."""

        def counted(items, limit):
            items = list(items)
            text = ", ".join(f"{k} ({n:,})" for k, n in items[:limit])
            return text + (f", ... and {len(items) - limit} more" if len(items) > limit else "")

        count = f"{self.count:,}"
        if self.unreadable:
            count += f" readable, {len(self.unreadable):,} unreadable"
        lines = [f"source      {self.source}", f"images      {count}"]
        sizes = [(f"{h}x{w}", n) for (h, w), n in self.sizes.most_common()]
        if len(sizes) == 1:
            lines.append(f"size        {sizes[0][0]} (height x width)")
        elif sizes:
            lines.append(f"sizes       {len(sizes)} (height x width): {counted(sizes, 5)}")
        chans = sorted(self.channels.items())
        if len(chans) == 1:
            lines.append(f"channels    {chans[0][0]}")
        elif chans:
            lines.append(f"channels    mixed: {counted(chans, 4)}")
        if self.classes:
            lines.append(f"classes     {len(self.classes)}: {counted(self.classes.items(), 20)}")
        else:
            lines.append("classes     none (unlabelled)")
        if self.unreadable:
            lines.append(f"unreadable  {len(self.unreadable):,}:")
            lines += [f"  {name}: {reason}" for name, reason in self.unreadable[:10]]
            if len(self.unreadable) > 10:
                lines.append(f"  ... and {len(self.unreadable) - 10} more")
        return "\n".join(lines)


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
        with _FileSource.open(kind, target, source) as files:
            return _load_files(files, source, resolution, channels, fit, max_bad_fraction, limit, progress)
    if kind in ("npz", "npy"):
        images, labels, class_names = _read_array_file(target, limit)
    elif kind == "named":
        name, split = target
        images, labels, class_names = named.load_named(name, split, cache_dir, progress)
        images = _to_nhwc(images[:limit], source)
        labels = labels[:limit]
    else:  # builtin
        count = synthetic.DEFAULT_COUNT if limit is None else limit
        size = resolution or synthetic.NATIVE_SIZE
        images, labels = synthetic.make_shapes(count, size)
        class_names = list(synthetic.SHAPE_CLASSES)
        fit = "pad"  # rendered at the requested size: nothing to fit
    return _from_arrays(images, labels, class_names, source, resolution, channels, fit)


def dataset_info(source: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> DataInfo:
    """Describe ``source`` without fitting it: counts, sizes, channels, classes, unreadable files.

    Every file is decoded (at reduced scale where the format allows) so that damaged
    files are found; they are reported, never raised. Raises :class:`DataError` only
    when the source is missing or holds no images at all.
    """
    source = str(source)
    kind, target = _resolve(source)
    if kind in ("folder", "zip"):
        with _FileSource.open(kind, target, source) as files:
            return _inspect_files(files, source, progress)
    if kind in ("npz", "npy"):
        images, labels, class_names = _read_array_file(target, None)
    elif kind == "named":
        images, labels, class_names = named.load_named(*target, cache_dir, progress)
        images = _to_nhwc(images, source)
    else:
        images, labels = synthetic.make_shapes()
        class_names = list(synthetic.SHAPE_CLASSES)
    n, h, w, c = images.shape
    classes: dict[str, int] = {}
    if labels is not None and class_names:
        counts = np.bincount(labels, minlength=len(class_names))
        classes = {class_names[i]: int(k) for i, k in enumerate(counts)}
    return DataInfo(source, n, Counter({(h, w): n}), Counter({c: n}), classes, [])


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


# ---------------------------------------------------------------------------
# folders and zip archives


@dataclass
class _Entry:
    name: str  # path inside the source, with "/" separators; used in messages
    ref: object  # filesystem path (str) or zipfile.ZipInfo


class _FileSource:
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
    def open(cls, kind: str, path: Path, source: str) -> "_FileSource":
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


def _load_files(
    files: _FileSource, source, resolution, channels, fit, max_bad_fraction, limit, progress
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
                h, w, c, image = _read_image(files.read(entry), keep_bytes=budget)
            except Exception as e:  # noqa: BLE001 - any failure to read a file means "unreadable"
                skipped.append((entry.name, _reason(e)))
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
            raise DataError(f"{source}: {_mixed_channels(channel_counts)}")
        channels = next(iter(channel_counts))
    resolution = resolution or _auto_resolution(sizes)
    fit = _auto_fit(sizes, resolution) if fit == "auto" else fit

    fitter = _Fitter(total, resolution, channels, fit)
    first_pass = set(decoded)  # handed to the fitter now (it may hold some until finish)
    for i in list(decoded):
        image = decoded.pop(i)
        fitter.add(i, image, image.shape[:2])
    rest = [i for i in headers if i not in first_pass]
    with _progress_bar(len(rest), "decoding large images", progress) as bar:
        for i in rest:
            h, w, _ = headers[i]
            try:
                image, drafted = _decode(files.read(entries[i]), _draft_target(h, w, resolution, fit))
            except Exception as e:  # noqa: BLE001
                skipped.append((entries[i].name, _reason(e)))
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


class _Fitter:
    """Fits decoded images into one ``(N, R, R, C)`` buffer, resizing equal sizes in batches."""

    def __init__(self, total: int, resolution: int, channels: int, fit: str):
        self.resolution, self.channels, self.fit = resolution, channels, fit
        self.out = np.empty((total, resolution, resolution, channels), dtype=np.uint8)  # (N, R, R, C)
        self.done = np.zeros(total, dtype=bool)
        self.pending: dict[tuple, list[tuple[int, np.ndarray]]] = defaultdict(list)
        self.pending_bytes = 0

    def add(self, index: int, image: np.ndarray, source_size: tuple[int, int]) -> None:
        """``image`` (H, W, C') uint8; ``source_size`` its size before any reduced-scale decode."""
        if image.shape[2] != self.channels:
            image = convert_channels(image[None], self.channels)[0]
        r = self.resolution
        if image.shape[:2] == (r, r) == tuple(source_size):
            self.out[index] = image  # already the right size: nothing to fit
            self.done[index] = True
            return
        key = (tuple(source_size), image.shape)
        self.pending[key].append((index, image))
        self.pending_bytes += image.nbytes
        if self.pending_bytes > _PENDING_BYTES:  # many large images: fit everything held
            for k in list(self.pending):
                self._flush(k)
        elif len(self.pending[key]) >= _BATCH_IMAGES:
            self._flush(key)

    def _flush(self, key) -> None:
        items = self.pending.pop(key)
        self.pending_bytes -= sum(a.nbytes for _, a in items)
        batch = torch.from_numpy(np.stack([a for _, a in items])).permute(0, 3, 1, 2)  # (n, C, h, w)
        fitted = fit_images(batch, self.resolution, self.fit, source_size=key[0])  # (n, C, R, R)
        index = [i for i, _ in items]
        self.out[index] = fitted.permute(0, 2, 3, 1).numpy()
        self.done[index] = True

    def finish(self) -> tuple[torch.Tensor, np.ndarray]:
        for k in list(self.pending):
            self._flush(k)
        out = self.out if self.done.all() else self.out[self.done]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), self.done  # (N, C, R, R)


def _progress_bar(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit="img", disable=not (enabled and total > _PROGRESS_MIN_FILES))


def _inspect_files(files: _FileSource, source: str, progress: bool) -> DataInfo:
    sizes, channel_counts, per_class = Counter(), Counter(), Counter()
    unreadable = []
    count = 0
    with _progress_bar(len(files.entries), "checking images", progress) as bar:
        for i, entry in enumerate(files.entries):
            bar.update(1)
            try:
                h, w, c = _check_image(files.read(entry))
            except Exception as e:  # noqa: BLE001 - reported, never raised
                unreadable.append((entry.name, _reason(e)))
                continue
            count += 1
            sizes[(h, w)] += 1
            channel_counts[c] += 1
            if files.class_of is not None:
                per_class[files.class_of[i]] += 1
    classes = {name: per_class[name] for name in files.class_names}
    return DataInfo(source, count, sizes, channel_counts, classes, unreadable)


# ---------------------------------------------------------------------------
# decoding


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the image unreadable
        return 1


def _mode_channels(im: Image.Image) -> int:
    """Channel count an opened image decodes to (see :func:`_to_array`)."""
    mode = im.mode
    if mode in ("1", "L", "I", "F") or mode.startswith("I;"):
        return 1
    if mode in ("LA", "La"):
        return 2
    if mode == "P":
        return 4 if "transparency" in im.info else 3
    if mode in ("RGBA", "RGBa", "PA"):
        return 4
    return 3


def _check_image(fp) -> tuple[int, int, int]:
    """(height, width, channels) of an image file as it decodes; decodes it to find damage.

    JPEG files are decoded at reduced scale, which still reads all of their data.
    """
    with Image.open(fp) as im:
        w, h = im.size
        channels = _mode_channels(im)
        if im.format == "JPEG":
            im.draft(im.mode, (64, 64))
        im.load()
        if _orientation(im) in _SWAPPING_ORIENTATIONS:
            h, w = w, h
        return h, w, channels


def _read_image(fp, keep_bytes: int) -> tuple[int, int, int, np.ndarray | None]:
    """(height, width, channels, image or None) of an image file.

    The image is decoded to ``(H, W, C)`` uint8 when it is small (at most
    ``_KEEP_IMAGE_BYTES``) and fits in ``keep_bytes``; otherwise only the header is read.
    """
    with Image.open(fp) as im:
        w, h = im.size
        c = _mode_channels(im)
        if im.format in _EXIF_FORMATS and _orientation(im) in _SWAPPING_ORIENTATIONS:
            h, w = w, h
        if h * w * c > min(keep_bytes, _KEEP_IMAGE_BYTES):
            return h, w, c, None
        image = _loaded_array(im)
        return image.shape[0], image.shape[1], image.shape[2], image


def _decode(fp, shrink_to: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Decode the first frame of an image file to ``(H, W, C)`` uint8, C = 1..4.

    ``shrink_to`` (height, width): for JPEG, decode at a reduced scale that is still at
    least this large (much faster for large photos). Returns (array, drafted).
    """
    with Image.open(fp) as im:
        drafted = False
        if shrink_to is not None and im.format == "JPEG":
            th, tw = shrink_to
            if _orientation(im) in _SWAPPING_ORIENTATIONS:
                th, tw = tw, th
            before = im.size
            im.draft(im.mode, (tw, th))
            drafted = im.size != before
        return _loaded_array(im), drafted


def _loaded_array(im: Image.Image) -> np.ndarray:
    """Decode an opened image (first frame, EXIF orientation applied) to (H, W, C) uint8."""
    im.load()
    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    return _to_array(im)


def _to_array(im: Image.Image) -> np.ndarray:
    """Convert a decoded image to ``(H, W, C)`` uint8 in L, LA, RGB or RGBA."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        pass
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("RGBa", "PA"):
        im = im.convert("RGBA")
    elif mode in ("I", "F") or mode.startswith("I;"):
        return _deep_gray_to_uint8(np.asarray(im), mode)[..., None]
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        im = im.convert("RGB")
    array = np.asarray(im)
    return array[..., None] if array.ndim == 2 else array


def _deep_gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer or float gray -> uint8.

    ``I;16*``: value / 257 (0..65535 -> 0..255). ``I``: kept when within 0..255, else
    treated as 16-bit. ``F``: 0..1 scaled by 255 when within 0..1, else stretched from
    its own minimum to maximum.
    """
    a = a.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and a.size and (a.max() > 255 or a.min() < 0)):
        a = a / 257.0
    elif mode == "F" and a.size:
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        else:
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _draft_target(h: int, w: int, resolution: int, fit: str) -> tuple[int, int] | None:
    """Smallest decode size that keeps quality (twice the fitted size), when worth drafting."""
    ih, iw = inner_size(h, w, resolution, fit)
    scale = max(ih / h, iw / w)
    if scale > 0.25:  # JPEG can only shrink by 1/2, 1/4, 1/8 and we keep a 2x margin
        return None
    return math.ceil(h * scale * 2), math.ceil(w * scale * 2)


def _reason(e: Exception) -> str:
    """A short description of why a file could not be read."""
    if isinstance(e, UnidentifiedImageError):
        return "not a recognised image file"
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "truncated" in text.lower():
        return "truncated file"
    return text if len(text) <= 100 else text[:97] + "..."


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


def _mixed_channels(counts: Counter) -> str:
    parts = ", ".join(
        f"{c} channel{'s' if c > 1 else ''} ({n} file{'s' if n != 1 else ''})" for c, n in sorted(counts.items())
    )
    suggestion = 3 if max(counts) >= 3 else 1
    return f"mixed channel counts: {parts}; pass --channels {suggestion} to convert all"


# ---------------------------------------------------------------------------
# channels and sizes


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, H, W, channels) uint8 (rules in the module docstring)."""
    have = images.shape[-1]
    if have == channels:
        return images
    has_alpha = have in (2, 4)
    colour = images[..., :-1] if has_alpha else images  # (N, H, W, 1 or 3)
    alpha = images[..., -1:] if has_alpha else None
    if alpha is not None and channels in (1, 3):
        colour = _composite_on_white(colour, alpha)
    if channels in (1, 2) and colour.shape[-1] == 3:
        colour = _luma(colour)
    elif channels in (3, 4) and colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    if channels in (2, 4):
        if alpha is None:
            alpha = np.full(images.shape[:-1] + (1,), 255, dtype=np.uint8)
        return np.concatenate([colour, alpha], axis=-1)
    return np.ascontiguousarray(colour)


def _composite_on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint32)
    return ((colour.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma in the fixed-point form Pillow uses for ``convert("L")``."""
    r, g, b = (rgb[..., i : i + 1].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _auto_resolution(sizes: Counter) -> int:
    (h, w), _ = sizes.most_common(1)[0]
    low, high = AUTO_RESOLUTION_RANGE
    return min(high, max(low, smallest_power_of_two(max(h, w))))


def _auto_fit(sizes: Counter, resolution: int) -> str:
    r = resolution
    fits = all(h <= r and w <= r and 4 * h >= 3 * r and 4 * w >= 3 * r for h, w in sizes)
    return "pad" if fits else "crop"


# ---------------------------------------------------------------------------
# numpy arrays (npz / npy files, named and built-in sets)


def _read_array_file(path: Path, limit: int | None):
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
    images = _to_nhwc(images, path)
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


def _to_nhwc(images: np.ndarray, where) -> np.ndarray:
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


def _from_arrays(images, labels, class_names, source, resolution, channels, fit) -> ImageDataset:
    """Fit an in-memory (N, H, W, C) array set into an :class:`ImageDataset`.

    ``labels`` are kept when ``class_names`` is not empty.
    """
    images = _to_uint8(np.asarray(images), source)
    n, h, w, c = images.shape
    channels = channels or c
    images = convert_channels(images, channels)
    resolution = resolution or _auto_resolution(Counter({(h, w): n}))
    fit = _auto_fit(Counter({(h, w): n}), resolution) if fit == "auto" else fit
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W)
    tensor = tensor.contiguous() if (h, w) == (resolution, resolution) else fit_images(tensor, resolution, fit)

    labelled = labels is not None and bool(class_names)
    label_tensor = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)) if labelled else None
    geometry = Geometry(resolution, h, w, fit, channels)
    return ImageDataset(tensor, label_tensor, list(class_names) if labelled else [], geometry, source, [])
