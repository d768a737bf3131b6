"""Checkpoints: everything needed to resume a run exactly, written atomically.

Layout inside a run folder::

    checkpoints/step-00001000/
        generator.json            architecture name + full model config + data geometry
        generator.safetensors     G's weights and buffers
        discriminator.json
        discriminator.safetensors
        state.pt                  optimisers, step counters, RNG states, fixed noise
    checkpoints/latest            name of the newest complete checkpoint folder

A checkpoint is written to a temporary folder that is renamed into place, and ``latest``
is replaced atomically afterwards, so an interruption at any moment leaves the previous
checkpoint usable. ``state.pt`` holds only tensors and plain containers and is read with
``weights_only=True``: loading it cannot run code.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import GanforgeError

GENERATOR_FORMAT = "ganforge.generator/1"
CHECKPOINT_DIR = "checkpoints"


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of parameters and buffers, as safetensors wants them."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def write_network(folder: Path, name: str, module: nn.Module, meta: dict[str, Any]) -> None:
    save_file(module_state(module), str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


def save_checkpoint(
    run_dir: Path,
    step: int,
    networks: dict[str, tuple[nn.Module, dict[str, Any]]],  # name -> (module, JSON metadata)
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write a complete checkpoint for ``step`` and point ``latest`` at it."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, (module, meta) in networks.items():
        write_network(tmp, name, module, meta)
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(root / "latest", final.name + "\n")
    _prune(root, keep, protect=final.name)
    return final


def save_best(run_dir: Path, module: nn.Module, meta: dict[str, Any], info: dict[str, Any]) -> Path:
    """Keep the generator with the best evaluation so far in ``run_dir/best`` (replaced atomically)."""
    final = Path(run_dir) / "best"
    tmp = Path(run_dir) / ".tmp-best"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_network(tmp, "generator", module, meta)
    (tmp / "best.json").write_text(json.dumps(info, indent=2) + "\n")
    old = Path(run_dir) / ".old-best"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _prune(root: Path, keep: int, protect: str) -> None:
    folders = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in folders[:-keep]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None if it has none."""
    root = Path(run_dir) / CHECKPOINT_DIR
    pointer = root / "latest"
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if (folder / "state.pt").is_file():
            return folder
    folders = sorted(p for p in root.glob("step-*") if (p / "state.pt").is_file())
    return folders[-1] if folders else None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a run folder or a checkpoint folder; return the checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise GanforgeError(f"no such run or checkpoint: {path}")
    if (path / "generator.safetensors").is_file():
        return path
    folder = latest_checkpoint(path)
    if folder is None:
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
