"""The run folder's format, and reading it: what training writes and sampling and evaluation read.

Layout inside a run folder::

    checkpoints/step-00001000/
        generator.json            architecture name + full model config + data geometry
        generator.safetensors     G's weights and buffers
        discriminator.json
        discriminator.safetensors
        generator_ema.json        (and .safetensors) the moving average of G, when the run keeps one
        state.pt                  optimisers, step counters, RNG states, fixed noise
        manifest.json             the files above with their sizes, written last
    checkpoints/latest            name of the newest complete checkpoint folder
    best/                         the generator with the best evaluation so far, and best.json

Writing lives in :mod:`ganforge.training.checkpoint` (durable saves, pruning); this module is
the reading side, so that sampling and metrics read runs without importing :mod:`ganforge.training`.

Loading. :func:`latest_checkpoint` does not trust ``latest`` blindly: it checks cheaply but
really that a folder's files are all there and whole (sizes against the manifest, safetensors
headers against the file lengths, the zip structure of ``state.pt``) and falls back, with a
:class:`CheckpointWarning`, to the newest readable checkpoint. ``state.pt`` holds only
tensors and plain containers and is read with ``weights_only=True``: loading it cannot run code.
"""
from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from .errors import GanforgeError

GENERATOR_FORMAT = "ganforge.generator/1"
GENERATOR_EMA = "generator_ema"  # the file name (and TrainState.networks() key) of G's moving average
CHECKPOINT_FORMAT = "ganforge.checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
ENCRYPTED_DIR = "encrypted"  # a CKKS federation's server folder: its model lives encrypted, at the sites
MANIFEST = "manifest.json"
_STEP = re.compile(r"step-(\d+)")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or damaged."""


def _step_of(folder: Path) -> int:
    match = _STEP.search(folder.name)
    return int(match.group(1)) if match else -1


def _step_folders(root: Path) -> list[Path]:
    """``step-*`` folders, newest first."""
    folders = [p for p in root.glob("step-*") if _STEP.fullmatch(p.name) and p.is_dir()]
    return sorted(folders, key=_step_of, reverse=True)


def _read_pointer(root: Path) -> str | None:
    """The folder name ``latest`` holds, or None when it is absent or not a plain name."""
    try:
        name = (root / "latest").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


# ---------------------------------------------------------------------------- checking
def _safetensors_problem(path: Path, size: int) -> str | None:
    """Whether the header parses and the data it describes ends exactly at the end of the file."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n == 0 or 8 + n > size:
            return "damaged header"
        try:
            header = json.loads(fh.read(n))
            end = max([int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"], default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "damaged header"
    if 8 + n + end != size:
        return f"{size} bytes where its header describes {8 + n + end}"
    return None


def _torch_zip_problem(path: Path, size: int) -> str | None:
    """Whether the zip archive torch.save wrote is whole: central directory, bounds, data.pkl CRC."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            pickles = [i for i in infos if i.filename.endswith("/data.pkl")]
            if not pickles:
                return "not a torch archive"
            if any(i.header_offset + i.compress_size > size for i in infos):
                return "truncated"
            zf.read(pickles[0])  # checks its CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        return f"damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


def checkpoint_problem(folder: str | os.PathLike, deep: bool = False) -> str | None:
    """Why ``folder`` is not a complete, readable checkpoint, or None when it is.

    Checks that every file is present and non-empty (with the size the manifest records, when
    the checkpoint has one), that the JSON files parse, that each safetensors header parses and
    describes exactly the file's length, and that ``state.pt`` is a whole zip archive. This reads
    only headers. ``deep=True`` also loads every file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    expected: dict[str, int | None]
    if (folder / MANIFEST).exists():
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            expected = {str(k): int(v) for k, v in manifest["files"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return f"{MANIFEST} is damaged"
    else:  # written before checkpoints had a manifest
        expected = {p.name: None for p in folder.iterdir() if p.suffix in (".json", ".safetensors")}
        expected.update({name: None for name in ("generator.json", "generator.safetensors",
                                                 "discriminator.json", "discriminator.safetensors")})
    expected.setdefault("state.pt", None)
    for name in sorted(expected):
        if name.endswith(".safetensors") and name.removesuffix(".safetensors") + ".json" not in expected:
            return f"{name} has no .json beside it"
    for name, want in sorted(expected.items()):
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size == 0:
            return f"{name} is empty"
        if want is not None and size != want:
            return f"{name} has {size} bytes, not {want}"
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(path, size)
        elif name.endswith(".json"):
            try:
                json.loads(path.read_text())
                problem = None
            except (OSError, ValueError):
                problem = "not valid JSON"
        elif name == "state.pt":
            problem = _torch_zip_problem(path, size)
        else:
            problem = None
        if problem is None and deep:
            try:
                if name.endswith(".safetensors"):
                    load_file(str(path))
                elif name == "state.pt":
                    torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any failure to load makes it unreadable
                problem = f"cannot be loaded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        if problem:
            return f"{name}: {problem}"
    return None


# ---------------------------------------------------------------------------- finding and loading


def latest_checkpoint(run_dir: str | os.PathLike, deep: bool = False) -> Path | None:
    """The newest readable checkpoint folder of a run, or None if it has none.

    Normally the folder ``latest`` names. A newer complete ``step-*`` folder (an interruption
    between its rename and the update of ``latest``) wins over it; a folder that fails
    :func:`checkpoint_problem` is skipped with a :class:`CheckpointWarning` naming it and why.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    pointed = _read_pointer(root)
    candidates = _step_folders(root)
    if pointed is not None and pointed not in {p.name for p in candidates}:
        candidates.append(root / pointed)  # a .tmp-*-link stand-in, or a missing folder
    candidates.sort(key=lambda p: (_step_of(p), p.name == pointed), reverse=True)
    skipped = []
    for folder in candidates:
        problem = checkpoint_problem(folder, deep=deep)
        if problem is None:
            if skipped:
                warnings.warn(f"{'; '.join(skipped)}; using {folder}", CheckpointWarning, stacklevel=2)
            return folder
        skipped.append(f"skipped unreadable checkpoint {folder} ({problem})")
    if skipped:
        warnings.warn(f"{'; '.join(skipped)}; no readable checkpoint left", CheckpointWarning, stacklevel=2)
    return None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a run folder or a checkpoint folder; return the checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise GanforgeError(f"no such run or checkpoint: {path}")
    run = path.parents[1] if path.parent.name == CHECKPOINT_DIR else path
    if (run / ENCRYPTED_DIR).is_dir():
        raise GanforgeError(f"{run} is an encrypted federation's server folder: its weights live at the sites (it "
                            "holds only the initial ones); a site key holder makes a run with: ganforge federate "
                            "decrypt RUN --key site.key --out PLAIN")
    if (path / "generator.safetensors").is_file():
        return path
    folder = latest_checkpoint(path)
    if folder is None:
        if _step_folders(path / CHECKPOINT_DIR):
            raise GanforgeError(f"{path} holds no readable checkpoint (all of {path}/{CHECKPOINT_DIR}/step-*/ "
                                "are incomplete or damaged)")
        raise GanforgeError(f"{path} holds no checkpoint (expected {path}/{CHECKPOINT_DIR}/step-*/)")
    return folder


def read_network_meta(folder: Path, name: str) -> dict[str, Any]:
    meta_path = folder / f"{name}.json"
    try:
        return json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GanforgeError(f"cannot read {meta_path}: {exc}") from None


def load_network_weights(folder: Path, name: str, module: nn.Module) -> None:
    weights = folder / f"{name}.safetensors"
    try:
        module.load_state_dict(load_file(str(weights)))
    except (OSError, RuntimeError, ValueError) as exc:
        raise GanforgeError(f"cannot load {weights}: {str(exc).splitlines()[0]}") from None


def load_state(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        return torch.load(folder / "state.pt", map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise GanforgeError(f"cannot read {folder / 'state.pt'}: {str(exc).splitlines()[0]}") from None
