"""Checkpoints: everything needed to resume a run exactly, written durably.

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

Saving. Every file is written into a temporary folder (``checkpoints/.tmp-*``) and fsynced,
then the folder is fsynced, renamed into place and its parent fsynced; only then is
``latest`` replaced (a temporary file, fsynced, renamed, folder fsynced), and only after that
are old checkpoints pruned. Pruning keeps the ``max(keep, 2)`` newest complete checkpoints,
never deletes the folder ``latest`` names, and removes temporaries left by an interruption.
Re-saving a step whose folder exists never lets ``latest`` name a missing or partial folder
(see :func:`_replace_folder`). So a crash, SIGKILL or power cut at any moment leaves
``latest`` naming a complete checkpoint, and the older ones kept beside it complete too.
``best`` is written durably too, and swapped in atomically where the system allows (:func:`save_best`).

Loading. :func:`latest_checkpoint` does not trust ``latest`` blindly: it checks cheaply but
really that a folder's files are all there and whole (sizes against the manifest, safetensors
headers against the file lengths, the zip structure of ``state.pt``) and falls back, with a
:class:`CheckpointWarning`, to the newest readable checkpoint. ``state.pt`` holds only
tensors and plain containers and is read with ``weights_only=True``: loading it cannot run code.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..durable import atomic_write_text, fsync_dir as _fsync_dir, fsync_file as _fsync_file
from ..durable import make_dirs as _make_dirs, write_json as _write_json
from ..errors import GanforgeError

GENERATOR_FORMAT = "ganforge.generator/1"
CHECKPOINT_FORMAT = "ganforge.checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"
_STEP = re.compile(r"step-(\d+)")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or damaged."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# ---------------------------------------------------------------------------- saving


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of parameters and buffers, as safetensors wants them."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def write_network(folder: Path, name: str, module: nn.Module, meta: dict[str, Any]) -> None:
    """``name.safetensors`` and ``name.json`` in ``folder``, both fsynced (the folder itself is not)."""
    weights = folder / f"{name}.safetensors"
    save_file(module_state(module), str(weights))
    _fsync_file(weights)
    _write_json(folder / f"{name}.json", meta)


def _temp_folder(parent: Path, label: str) -> Path:
    """A new, uniquely named ``.tmp-<label>-*`` folder (normal permissions, unlike mkdtemp)."""
    while True:
        tmp = parent / f".tmp-{label}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


def save_checkpoint(
    run_dir: Path,
    step: int,
    networks: dict[str, tuple[nn.Module, dict[str, Any]]],  # name -> (module, JSON metadata)
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write a complete, durable checkpoint for ``step``, point ``latest`` at it, prune old ones."""
    root = Path(run_dir) / CHECKPOINT_DIR
    _make_dirs(root)
    final = root / f"step-{step:08d}"
    tmp = _temp_folder(root, final.name)
    for name, (module, meta) in networks.items():
        write_network(tmp, name, module, meta)
    with open(tmp / "state.pt", "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    _write_json(tmp / MANIFEST, {"format": CHECKPOINT_FORMAT, "step": step, "files": files})
    _fsync_dir(tmp)
    if final.exists():
        _replace_folder(root, tmp, final)
    else:
        os.replace(tmp, final)
        _fsync_dir(root)
        atomic_write_text(root / "latest", final.name + "\n")
    _prune(root, keep, protect=final.name)
    return final


def _replace_folder(root: Path, tmp: Path, final: Path) -> None:
    """Re-save a step whose folder exists (a rollback or resume at the same step, or the final
    save of a run right after a periodic one), with ``latest`` naming a complete folder throughout.

    A folder cannot be renamed over a non-empty one, and renaming ``tmp`` while ``latest`` names
    it would leave ``latest`` dangling. So a second complete copy of the new checkpoint is made
    from hard links to ``tmp``'s (already fsynced) files, and ``latest`` names that copy while
    the old ``final`` is moved aside and ``tmp`` takes its name; then ``latest`` names ``final``
    again and the copy and the old folder are removed. An interruption leaves ``latest`` naming
    the old ``final`` (before the switch), the copy (during it) or the new ``final`` (after);
    leftover ``.tmp-*`` folders are removed by the next prune unless ``latest`` names one.
    """
    stand_in = tmp.with_name(tmp.name + "-link")
    stand_in.mkdir()
    for f in tmp.iterdir():
        try:
            os.link(f, stand_in / f.name)
        except OSError:  # a filesystem without hard links: copy
            shutil.copyfile(f, stand_in / f.name)
            _fsync_file(stand_in / f.name)
    _fsync_dir(stand_in)
    _fsync_dir(root)
    atomic_write_text(root / "latest", stand_in.name + "\n")
    old = tmp.with_name(tmp.name + "-old")
    os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(root)
    atomic_write_text(root / "latest", final.name + "\n")
    _remove(stand_in)
    _remove(old)


def save_best(run_dir: Path, module: nn.Module, meta: dict[str, Any], info: dict[str, Any]) -> Path:
    """Keep the generator with the best evaluation so far in ``run_dir/best``, replaced durably.

    The new folder is written and fsynced beside ``best`` and swapped in with one atomic
    exchange where the system has one (Linux); elsewhere ``best`` is renamed to ``.old-best``
    and the new folder renamed in, and a ``.old-best`` left alone by an interruption between
    those two renames is put back at the next call.
    """
    run_dir = Path(run_dir)
    _make_dirs(run_dir)
    final, old = run_dir / "best", run_dir / ".old-best"
    if not final.exists() and old.is_dir():
        os.replace(old, final)
        _fsync_dir(run_dir)
    _remove(old)
    for stale in run_dir.glob(".tmp-best*"):
        _remove(stale)
    tmp = _temp_folder(run_dir, "best")
    write_network(tmp, "generator", module, meta)
    _write_json(tmp / "best.json", info)
    _fsync_dir(tmp)
    if not final.exists():
        os.replace(tmp, final)
    elif _exchange(tmp, final):
        old = tmp  # now holds the previous best
    else:
        os.replace(final, old)
        os.replace(tmp, final)
    _fsync_dir(run_dir)
    _remove(old)
    return final


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


def _prune(root: Path, keep: int, protect: str) -> None:
    """Keep the max(keep, 2) newest complete checkpoints and whatever ``latest`` names; remove
    older or unreadable ``step-*`` folders and temporaries left by interruptions."""
    protected = {protect, _read_pointer(root)}
    for stale in root.glob(".tmp-*"):
        if stale.name not in protected:
            _remove(stale)
    kept = 0
    for folder in _step_folders(root):
        if folder.name in protected:
            kept += 1
        elif kept < max(keep, 2) and checkpoint_problem(folder) is None:
            kept += 1
        else:
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------- checking and loading


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
