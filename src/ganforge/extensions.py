"""Extensions: what a wrapper of a run's training may change, through a fixed set of hooks.

The training loop calls these hooks at fixed points and knows nothing else of the wrapper, so
differential privacy (``ganforge.privacy``) or any later wrapper plugs in without the loop importing
it. An extension is built for a run by a factory registered under the name of the configuration
section that switches it on (:func:`register_extension`), with the check that validates that section;
``ganforge.privacy`` registers ``dp`` when ``ganforge`` is imported. This module imports nothing heavy
(``import ganforge`` stays free of torch).

Every hook has a neutral default, so an extension overrides only what it changes:

* before the state exists: :meth:`~TrainingExtension.check_launch` (refuse a process layout),
  :meth:`~TrainingExtension.precision` (what ``auto`` means), :meth:`~TrainingExtension.data_order`
  (which records each real batch holds) and :attr:`~TrainingExtension.reads_real_images` (whether the
  loop's monitor may look at real images);
* :meth:`~TrainingExtension.attach`: rewire the built training state (D's step, the fake batch, ...);
* each step and log interval: :meth:`~TrainingExtension.stop_reason`,
  :meth:`~TrainingExtension.released_statistics` (which step statistics may leave the run),
  :meth:`~TrainingExtension.log_record` (what a log line adds),
  :meth:`~TrainingExtension.steering` (what the health checks may decide on);
* outputs: :meth:`~TrainingExtension.summary` (the run summary and every network's metadata, under
  :attr:`~TrainingExtension.key`), :meth:`~TrainingExtension.class_counts`;
* checkpoints and rollbacks: :meth:`~TrainingExtension.state_dict`,
  :meth:`~TrainingExtension.load_state_dict`, :meth:`~TrainingExtension.before_rollback` /
  :meth:`~TrainingExtension.after_rollback`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # (this module is imported with ganforge itself, which must not import torch)
    import torch

    from .config import Config


class TrainingExtension:
    """The hooks the loop calls; see the module doc. ``key`` names the extension's entry in checkpoints, the
    run summary and the networks' metadata."""

    key = "extension"
    reads_real_images = True  # False: the loop's monitor may not look at real images outside the step

    def check_launch(self, world_size: int) -> None:
        """Raise a ConfigError when the run's processes (``world_size``) are not supported."""

    def precision(self, requested: str) -> str:
        """The precision to use for ``train.precision`` = ``requested`` (``auto`` may be narrowed)."""
        return requested

    def data_order(self, n_images: int, batch_size: int, device: "torch.device"):
        """The data order (``indices(batch) -> (B,)`` and ``batches_per_epoch``), or None for the epoch order."""
        return None

    def attach(self, trainer: Any) -> None:
        """Called once ``trainer`` (a :class:`~ganforge.training.loop.Trainer`) has built its training state,
        stopping rules and monitor."""

    def stop_reason(self, d_steps_next: int) -> str | None:
        """A reason to stop before the next G step (``d_steps_next`` D steps), or None."""
        return None

    def released_statistics(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Which of the step statistics (``Trainer.stat_names``) may leave the run: its log lines, progress bar
        and TensorBoard, and a federated site's report to the server."""
        return names

    def log_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The log line as it may be written: fields added (the statistics are filtered before)."""
        return record

    def steering(self, record: dict[str, Any]) -> dict[str, Any]:
        """The part of a log line that may steer training (divergence rollbacks)."""
        return record

    def summary(self) -> dict[str, Any] | None:
        """What the run summary and every network's metadata hold under ``key`` (None: nothing)."""
        return None

    def class_counts(self, counts: list[int] | None) -> list[int] | None:
        """The class counts the networks' metadata may keep, given the data's own."""
        return counts

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        pass

    def before_rollback(self) -> Any:
        """Called before a rollback reloads an older checkpoint; what it returns goes to :meth:`after_rollback`."""
        return None

    def after_rollback(self, token: Any) -> None:
        """Called after the reload, with what :meth:`before_rollback` returned."""


ExtensionFactory = Callable[["Config"], "TrainingExtension | None"]
SectionCheck = Callable[["Config"], None]
_FACTORIES: dict[str, ExtensionFactory] = {}
_CHECKS: dict[str, SectionCheck] = {}


def register_extension(section: str, factory: ExtensionFactory, check: SectionCheck | None = None) -> None:
    """Build ``factory(cfg)`` for every run (it returns None when its section leaves it off); ``check(cfg)``
    validates the section (see :func:`register_check`)."""
    _FACTORIES[section] = factory
    if check is not None:
        register_check(section, check)


def register_check(section: str, check: SectionCheck) -> None:
    """``check(cfg)`` validates the options named ``section`` (raising ConfigError), last in
    :func:`ganforge.validation.validate`; a package registers the checks of its own options so that validation
    imports none of them (``ganforge.metrics.names`` checks ``train.eval_*``, ``ganforge.privacy`` the ``dp``
    section)."""
    _CHECKS[section] = check


def check_sections(cfg: "Config") -> None:
    """Run every registered check on ``cfg``."""
    for check in _CHECKS.values():
        check(cfg)


def extensions_for(cfg: "Config") -> list[TrainingExtension]:
    """The extensions a run's configuration switches on, in registration order."""
    built = (factory(cfg) for factory in _FACTORIES.values())
    return [extension for extension in built if extension is not None]
