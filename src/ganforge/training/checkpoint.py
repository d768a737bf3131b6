"""Checkpoints: everything needed to resume a run exactly, written durably.

The run folder's layout, and reading it (:func:`latest_checkpoint`, :func:`find_checkpoint`,
:func:`checkpoint_problem`, ``load_*``), live in :mod:`ganforge.runs`, so that sampling and
metrics read runs without importing training; they are re-exported here. This module writes.

Saving. Every file is written into a temporary folder (``checkpoints/.tmp-*``) and fsynced,
then the folder is fsynced, renamed into place and its parent fsynced; only then is
``latest`` replaced (a temporary file, fsynced, renamed, folder fsynced), and only after that
are old checkpoints pruned. Pruning keeps the ``max(keep, 2)`` newest complete checkpoints,
never deletes the folder ``latest`` names, and removes temporaries left by an interruption.
Re-saving a step whose folder exists never lets ``latest`` name a missing or partial folder
(see :func:`_replace_folder`). So a crash, SIGKILL or power cut at any moment leaves
``latest`` naming a complete checkpoint, and the older ones kept beside it complete too.
``best`` is written durably too, and swapped in atomically where the system allows (:func:`save_best`).
"""
from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..durable import atomic_write_text, fsync_dir as _fsync_dir, fsync_file as _fsync_file
from ..durable import make_dirs as _make_dirs, write_json as _write_json
from ..runs import (  # the reading side, re-exported for existing importers
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    GENERATOR_FORMAT,
    MANIFEST,
    CheckpointWarning,
    _read_pointer,
    _step_folders,
    checkpoint_problem,
    find_checkpoint,
    latest_checkpoint,
    load_network_weights,
    load_state,
    read_network_meta,
)

__all__ = [
    "CHECKPOINT_DIR", "CHECKPOINT_FORMAT", "GENERATOR_FORMAT", "MANIFEST", "CheckpointWarning",
    "checkpoint_problem", "find_checkpoint", "latest_checkpoint", "load_network_weights", "load_state",
    "read_network_meta", "module_state", "write_network", "save_checkpoint", "save_best",
]


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
