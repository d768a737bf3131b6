"""What a run's checkpoint holds and how the loop writes and reads it.

A checkpoint is the networks as safetensors (G, D and G's average, each with the metadata that
rebuilds it: architecture, model config, data geometry, class names) plus ``state.pt``: the
training state (:meth:`TrainState.state_dict`: optimisers, counters, RNG streams, augmentation)
and the state of everything the loop composes around it (elapsed time, fixed noise, best
evaluation, health guard). :mod:`ganforge.training.checkpoint` writes the files durably.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import GanforgeError
from ..runs import GENERATOR_EMA, GENERATOR_FORMAT
from .checkpoint import latest_checkpoint, load_network_weights, load_state, save_best, save_checkpoint
from .monitor import weights_finite
from .state import TrainState

DISCRIMINATOR_FORMAT = "ganforge.discriminator/1"


def network_meta(fmt: str, arch: str, model_cfg, geometry, class_names, class_counts, step: int,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON beside each saved network: enough to rebuild and sample it (see ganforge.sampling); ``extra``
    adds entries (the extensions' summaries, such as a private run's ``privacy``)."""
    return {
        "format": fmt,
        "arch": arch,
        "model": model_cfg.to_dict(),
        "geometry": geometry.to_dict(),
        "class_names": list(class_names),
        "class_counts": class_counts,  # images per class, for sampling with --class-mix data
        "step": step,
        "ganforge_version": __version__,
        **(extra or {}),
    }


class RunCheckpoints:
    """Checkpoints of one run folder. ``meta(fmt)`` gives the networks' JSON metadata at the current step."""

    def __init__(self, run_dir: Path, keep: int, meta: Callable[[str], dict[str, Any]]):
        self.run_dir, self.keep, self.meta = Path(run_dir), keep, meta

    def latest(self) -> Path | None:
        return latest_checkpoint(self.run_dir)

    def save(self, state: TrainState, extras: dict[str, Any]) -> Path | None:
        """Write a checkpoint of ``state`` and the loop's ``extras``, unless the weights are no longer finite
        (then the last good checkpoint stays the newest and is returned)."""
        if not weights_finite(state.G, state.D):
            return self.latest()
        networks = {
            "generator": (state.G, self.meta(GENERATOR_FORMAT)),
            "discriminator": (state.D, self.meta(DISCRIMINATOR_FORMAT)),
        }
        if state.ema is not None:  # the average with BatchNorm statistics recomputed for it (training/ema.py)
            networks[GENERATOR_EMA] = (state.sampling_generator,
                                       {**self.meta(GENERATOR_FORMAT), "batchnorm_stats": "recomputed"})
        return save_checkpoint(self.run_dir, state.step, networks, {**state.state_dict(), **extras}, keep=self.keep)

    def load(self, folder: Path | None, state: TrainState, fingerprint: str, order=None) -> dict[str, Any]:
        """Load ``folder`` into ``state`` (weights and training state); returns the whole saved dict, from
        which the loop restores its own parts. Refuses a checkpoint of other training images. ``order``: the
        run's data order, to continue a checkpoint saved by another number of processes at the same place."""
        if folder is None:
            raise GanforgeError(f"{self.run_dir} holds no checkpoint to resume from")
        saved = load_state(folder)
        if saved["data_fingerprint"] != fingerprint:
            raise GanforgeError(f"the training images differ from those the run in {self.run_dir} started with; "
                                "resume with the same data or start a new run")
        for name, module in state.networks().items():
            load_network_weights(folder, name, module)
        state.load_state_dict(saved, order)
        return saved

    def save_best(self, generator, best: dict[str, Any]) -> Path:
        return save_best(self.run_dir, generator, self.meta(GENERATOR_FORMAT), best)
