"""Durable file writes: data fsynced before it is renamed into place, folders fsynced after.

Used by checkpoints and the run folder's config.json, so that a crash, SIGKILL or power cut
leaves either the old or the new version of a file, never an empty or torn one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any




def fsync_file(path: Path) -> None:
    with open(path, "r+b") as fh:  # opened for writing: Windows only flushes such handles
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make the entries of a folder (files created, renamed or removed in it) durable."""
    if os.name == "nt":  # folders cannot be opened for fsync on Windows; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as fh:
        fh.write(json.dumps(obj, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def make_dirs(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every folder it creates."""
    created = []
    p = path
    while not p.exists():
        created.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(created):
        fsync_dir(folder.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace a file durably: readers see the old or the new content, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace a small text file durably: readers see the old or the new text, never a torn one."""
    atomic_write_bytes(path, text.encode())
