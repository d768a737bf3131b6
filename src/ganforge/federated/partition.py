"""Splitting one labelled data set over simulated sites: IID, by class, or Dirichlet over labels.

``iid``: a random permutation dealt into equal parts. ``classes``: every class on one site only,
classes dealt round-robin (with as many sites as classes, one class per site): the extreme of
label skew. ``dirichlet:ALPHA``: for each class, the share of its images each site gets is drawn
from Dirichlet(ALPHA, ..., ALPHA) (Hsu et al. 2019, "Measuring the effects of non-identical data
distribution"); small ALPHA concentrates each class on few sites, large ALPHA approaches IID.
Draws are repeated until every site holds at least ``min_images`` (as is usual for this split).

:func:`write_partitions` writes each site's share as ``site-K/data.npz`` (images as stored in the
source when it is an array, named or built-in set, so each site fits them exactly as a single run
would), which ``ganforge federate site --data`` reads like any other source.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

MAX_DRAWS = 1000


def parse_split(text: str) -> tuple[str, float | None]:
    """'iid' | 'classes' | 'dirichlet:ALPHA' -> (kind, alpha)."""
    kind, _, value = text.partition(":")
    if kind in ("iid", "classes") and not value:
        return kind, None
    if kind == "dirichlet":
        try:
            alpha = float(value)
        except ValueError:
            alpha = -1.0
        if alpha > 0:
            return kind, alpha
        raise ConfigError(f"--split dirichlet:ALPHA needs a positive ALPHA, e.g. dirichlet:0.5; got {text!r}")
    raise ConfigError(f"--split must be iid, classes or dirichlet:ALPHA, got {text!r}")


def split_indices(labels: np.ndarray | None, n: int, sites: int, split: str, seed: int = 0,
                  min_images: int = 1) -> list[np.ndarray]:
    """Disjoint index arrays, one per site, covering all ``n`` images (labels (n,) needed unless iid)."""
    kind, alpha = parse_split(split)
    if sites < 1:
        raise ConfigError(f"--sites must be at least 1, got {sites}")
    if n < sites * min_images:
        raise DataError(f"{n} images cannot give {sites} sites {min_images} images each")
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), sites)]
    if labels is None:
        raise DataError(f"--split {split} splits by class and needs labelled data; use --split iid")
    classes = np.unique(labels)
    if kind == "classes":
        if len(classes) < sites:
            raise DataError(f"--split classes needs at least one class per site: {len(classes)} classes, "
                            f"{sites} sites")
        parts = [np.flatnonzero(np.isin(labels, classes[k::sites])) for k in range(sites)]
    else:
        for _ in range(MAX_DRAWS):
            parts = _dirichlet_draw(labels, classes, sites, alpha, rng)
            if min(len(p) for p in parts) >= min_images:
                break
        else:
            raise DataError(f"no Dirichlet({alpha}) draw in {MAX_DRAWS} gave every one of {sites} sites "
                            f"{min_images} images; raise ALPHA or lower --sites")
    too_small = [k for k, p in enumerate(parts) if len(p) < min_images]
    if too_small:
        raise DataError(f"site {too_small[0]} would hold {len(parts[too_small[0]])} images, fewer than "
                        f"{min_images}")
    return parts


def _dirichlet_draw(labels, classes, sites, alpha, rng) -> list[np.ndarray]:
    shares: list[list[np.ndarray]] = [[] for _ in range(sites)]
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = (np.cumsum(rng.dirichlet(np.full(sites, alpha))) * len(idx)).astype(int)[:-1]
        for k, part in enumerate(np.split(idx, cuts)):
            shares[k].append(part)
    return [np.sort(np.concatenate(s)) for s in shares]


def write_partitions(source: str, out: Path, sites: int, split: str, seed: int = 0, min_images: int = 1,
                     cache_dir=None, progress: bool = True, resolution: int | None = None) -> list[Path]:
    """Split ``source`` and write ``out/site-K/data.npz`` for each site; returns the files."""
    from ..data import load_dataset, read_arrays

    stored = read_arrays(source, cache_dir=cache_dir, progress=progress)
    if stored is not None:
        images, labels, class_names = stored
    else:  # a folder or zip: its images fitted once, at the training size, then split
        data = load_dataset(source, resolution=resolution, cache_dir=cache_dir, progress=progress)
        images = data.images.permute(0, 2, 3, 1).numpy()  # (N, R, R, C)
        labels = data.labels.numpy() if data.labels is not None else None
        class_names = data.class_names
    parts = split_indices(labels, len(images), sites, split, seed, min_images)
    files = []
    for k, idx in enumerate(parts):
        folder = Path(out) / f"site-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"images": np.asarray(images[idx])}
        if labels is not None:
            arrays["labels"] = labels[idx]
            arrays["class_names"] = np.array(class_names)
        np.savez(folder / "data.npz", **arrays)
        files.append(folder / "data.npz")
    return files


def describe_split(files: list[Path]) -> str:
    """One line per site: images and classes held (for the command line)."""
    lines = []
    for k, f in enumerate(files):
        with np.load(f) as d:
            labels = d["labels"] if "labels" in d.files else None
            n = len(d["images"])
        held = "" if labels is None else f", {len(np.unique(labels))} classes"
        lines.append(f"site {k}: {n} images{held}")
    return "\n".join(lines)
