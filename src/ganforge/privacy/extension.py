"""Differential privacy as a training extension: the hooks the loop calls (ganforge/extensions.py).

The loop knows nothing of privacy; through these hooks a private run gets its Poisson data order, the
private D step (:class:`~.engine.PrivateTraining`), float32, one process, the budget as a stop rule, the
ledger in every checkpoint and across rollbacks, and log lines that hold only what epsilon covers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..extensions import TrainingExtension, register_extension

if TYPE_CHECKING:
    from ..config import Config
    from ..training.loop import Trainer
    from .engine import PrivateTraining

# The step statistics a private run releases (logs, progress bar, a federated site's report): those computed
# from public noise and the networks as they stand, post-processing of the private steps (G's losses and
# gradient norm, D's mean score on generated images, the norm of D's noised update; the penalty is 0 under DP).
# D's loss, D(x) and class loss on the private records are computed outside the noised sum and never leave the
# run; a statistic added to the training loop later stays inside until it is listed here.
RELEASED_STATISTICS = ("loss_g", "grad_g", "mode_seeking_g", "class_g", "d_fake", "grad_d", "penalty_d")


class PrivateExtension(TrainingExtension):
    key = "privacy"  # the checkpoint's, the run summary's and the networks' metadata's entry, as always
    reads_real_images = False  # the monitor's diversity scale would read private images: it reads G alone

    def __init__(self, cfg: "Config"):
        self.cfg = cfg
        self.training: "PrivateTraining | None" = None  # built by attach

    def check_launch(self, world_size: int) -> None:
        if world_size > 1:
            raise ConfigError("differentially private training runs on one process; launch it without torchrun")

    def precision(self, requested: str) -> str:
        return "fp32" if requested == "auto" else requested  # per-record gradient norms in float32

    def data_order(self, n_images: int, batch_size: int, device):
        from .poisson import PoissonOrder

        # Poisson samples from the run's secret seed, which exists once attach has run (before any batch)
        return PoissonOrder(n_images, batch_size / n_images, lambda: self.training.secret_seed, device)

    def attach(self, trainer: "Trainer") -> None:
        """D's step made differentially private, its noise planned for the run's length."""
        from .engine import PrivateTraining

        t = self.cfg.train
        total = trainer.total_steps()
        planned = total * t.d_steps if total is not None else None
        try:
            self.training = PrivateTraining(trainer.state, self.cfg.dp, len(trainer.dataset), t.batch_size,
                                            labels=trainer.dataset.labels if trainer.num_classes else None,
                                            num_classes=trainer.num_classes, planned_d_steps=planned)
        except ValueError as exc:
            raise ConfigError(f"differential privacy: {exc}") from None

    def stop_reason(self, d_steps_next: int) -> str | None:
        return self.training.budget_stop(d_steps_next)

    def released_statistics(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name for name in names if name in RELEASED_STATISTICS)

    def log_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The epsilon spent is added."""
        return {**record, "epsilon": round(self.training.epsilon(), 4)}

    def summary(self) -> dict[str, Any]:
        return self.training.summary()

    def class_counts(self, counts: list[int] | None) -> list[int] | None:
        return self.training.class_counts  # the released (noised) counts, never the data's own

    def state_dict(self) -> dict[str, Any]:
        return self.training.state_dict()

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.training.load_state_dict(saved)

    def before_rollback(self) -> dict[str, Any]:
        return self.training.state_dict()  # the ledger: what was spent stays spent

    def after_rollback(self, ledger: dict[str, Any]) -> None:
        self.training.continue_after_rollback(ledger)


def private_extension(cfg: "Config") -> PrivateExtension | None:
    """The extension factory registered for the ``dp`` section: on when dp.epsilon or dp.noise is set."""
    return PrivateExtension(cfg) if cfg.dp.enabled else None


def private_training(trainer: "Trainer") -> "PrivateTraining | None":
    """The private D step and ledger of a trainer's run, or None for a run without differential privacy."""
    extension = trainer.extension(PrivateExtension.key)
    return extension.training if extension is not None else None


def check_dp_section(cfg: "Config") -> None:
    """The dp section's validation (options refused under privacy, each with its reason)."""
    from .checks import check_private

    check_private(cfg)


register_extension("dp", private_extension, check=check_dp_section)  # imported by ganforge/__init__.py
