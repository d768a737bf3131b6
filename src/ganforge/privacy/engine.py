"""What a training state becomes under differential privacy (DP-SGD on D, with Opacus).

* D is wrapped in Opacus's ``GradSampleModule``: per-record gradients. Each D step pairs real record
  i with generated image i (D's loss is a mean over the pairs, both forward passes are taken before
  one backward pass, and Opacus sums a parameter's per-sample gradients over the two passes), so a
  "sample" is the pair and one private record is in exactly one pair: clipping the pair's gradient
  to C bounds the record's influence by C.
* D's optimiser becomes Opacus's ``DPOptimizer``: clip each pair's gradient to ``max_grad_norm``,
  sum, add N(0, (sigma C)^2) noise, divide by the expected batch size. Its step hook advances the
  accountant, once per D step.
* Real batches are Poisson samples (:mod:`.poisson`, the loop's data order); the fakes come from a
  fixed-size batch of G (real record i is paired with fake i mod that size), so G never sees how many
  records were drawn.
* G's classes come from a public distribution (:mod:`.labels`), never from the private batch.
* The noise and the sampling come from a secret seed drawn from the OS at the start (not the run's
  seed, which config.json shows) and kept in the checkpoint, so a resumed run continues bit for bit.

Everything G is trained on is D's privatised output, so G (and its average) are private by
post-processing. :mod:`.checks` refuses the options that would break that.
"""
from __future__ import annotations

import copy
import secrets
import warnings
from typing import Any

import torch

from ..config import PrivacyConfig
from ..training.state import TrainState, stream_seed
from ..training.steps import d_step
from . import require_opacus
from .accounting import default_delta, plan_noise, quiet_accounting, steps_within
from .labels import ReleasedLabels, release_labels

NOISE_STREAM, LABEL_STREAM = 0, 3


def draw_secret_seed() -> int:
    """63 bits from the operating system's secure source: the seed of a private run's noise and sampling."""
    return secrets.randbits(63)


class PrivateTraining:
    """D's private step, the data order and the privacy ledger of one run (see the module doc).

    ``PrivateTraining(state, cfg.dp, ...)`` rewires ``state`` in place; ``planned_d_steps`` (the D
    steps the run's limits allow) sets the noise when only an epsilon budget is given.
    """

    def __init__(self, state: TrainState, dp: PrivacyConfig, n_records: int, batch_size: int,
                 labels: torch.Tensor | None = None, num_classes: int = 0, planned_d_steps: int | None = None):
        require_opacus()
        from opacus import GradSampleModule
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer

        self.dp, self.state = dp, state
        self.n_records, self.batch_size = n_records, batch_size
        self.sample_rate = batch_size / n_records  # q: each record's chance to join a D batch
        self.delta = dp.delta if dp.delta is not None else default_delta(n_records)
        self.secret_seed = draw_secret_seed()
        self._labels, self.num_classes = labels, num_classes
        self.released = self._release_labels()
        prior = self.released.history if self.released else []
        self._prior = prior
        if dp.noise is not None:
            noise = float(dp.noise)
        else:
            if planned_d_steps is None:
                raise ValueError("dp.epsilon plans the noise for the run's D steps: set a step or epoch limit")
            noise = plan_noise(dp.epsilon, self.delta, self.sample_rate, planned_d_steps, dp.accountant, prior)
        self.noise = noise

        self.accountant = create_accountant(mechanism=dp.accountant)
        self.accountant.history = list(prior)
        self._epsilon_of: tuple[tuple, float] = ((), 0.0)  # (history, its epsilon)
        self.noise_rng = torch.Generator(state.device)
        for module in state.D.modules():  # in-place activations would overwrite the outputs Opacus's hooks keep
            if getattr(module, "inplace", False):
                module.inplace = False
        self.gsm = GradSampleModule(state.D, batch_first=True, loss_reduction="mean", strict=True)
        self.gsm.disable_hooks()  # on only inside D's private step (G's step backpropagates through D too)
        self.optimizer = DPOptimizer(state.d_opt, noise_multiplier=self.noise, max_grad_norm=dp.max_grad_norm,
                                     expected_batch_size=batch_size, loss_reduction="mean", generator=self.noise_rng)
        self._set_noise(noise)
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(self.sample_rate))
        state.D_train, state.d_opt, state.d_step_fn = self.gsm, self.optimizer, self.d_step
        state.fake_batch = batch_size
        state.fake_label_probs = self.released.probs.to(state.device) if self.released else None

    def _set_noise(self, noise: float) -> None:
        """Use noise multiplier ``noise`` from now on; the budget's step limit follows from it (when first asked:
        a resumed run replaces the planned noise with its saved one before any step)."""
        self.noise = self.optimizer.noise_multiplier = noise
        self._max_d_steps: int | None = None

    @property
    def max_d_steps(self) -> int | None:
        """The most D steps the epsilon budget allows at the current noise (None without a budget)."""
        if self.dp.epsilon is not None and self._max_d_steps is None:
            self._max_d_steps = steps_within(self.dp.epsilon, self.delta, self.noise, self.sample_rate,
                                             self.dp.accountant, self._prior)
        return self._max_d_steps

    def _release_labels(self) -> ReleasedLabels | None:
        if not self.num_classes:
            return None
        generator = torch.Generator().manual_seed(stream_seed(self.secret_seed, 0, LABEL_STREAM))
        return release_labels(self._labels, self.num_classes, self.dp.labels, self.dp.label_noise, generator)

    # ------------------------------------------------------------------ the private step

    def d_step(self, D, d_opt, real: torch.Tensor, fake: torch.Tensor, opts, step: int = 0,
               labels: torch.Tensor | None = None, fake_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """:func:`~ganforge.training.steps.d_step` with per-pair gradients on and this step's noise seeded.
        real (B, C, R, R) with B from Poisson sampling, possibly 0; fake (B, C, R, R) paired with it."""
        self.noise_rng.manual_seed(stream_seed(self.secret_seed, step, NOISE_STREAM))
        if len(real) == 0:
            return self._empty_step(d_opt)
        self.gsm.enable_hooks()
        try:
            with warnings.catch_warnings():  # D's first layer gets no input gradient here, as intended
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                return d_step(D, d_opt, real, fake, opts, step=step, labels=labels, fake_labels=fake_labels)
        finally:
            self.gsm.disable_hooks()

    def _empty_step(self, d_opt) -> dict[str, torch.Tensor]:
        """A batch that drew no record still takes the noisy step the accountant counts."""
        d_opt.zero_grad(set_to_none=True)
        for p in self.state.D.parameters():
            p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        d_opt.step()
        zero = torch.zeros((), device=self.state.device)
        return {"loss_d": zero, "penalty_d": zero, "grad_d": zero, "d_real": zero, "d_fake": zero}

    # ------------------------------------------------------------------ the ledger

    @property
    def d_steps_taken(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history) - sum(steps for _, _, steps in self._prior)

    def epsilon(self) -> float:
        """The epsilon spent so far (at ``self.delta``), label histogram included."""
        key = tuple(tuple(entry) for entry in self.accountant.history)
        if key != self._epsilon_of[0]:  # the PRV accountant takes a moment: once per history
            spent = any(steps for _, _, steps in key)
            with quiet_accounting():
                value = float(self.accountant.get_epsilon(delta=self.delta)) if spent else 0.0
            self._epsilon_of = (key, value)
        return self._epsilon_of[1]

    def budget_stop(self, d_steps_next: int) -> str | None:
        """A stop reason when the next G step (``d_steps_next`` D steps) would exceed the epsilon budget."""
        if self.max_d_steps is not None and self.d_steps_taken + d_steps_next > self.max_d_steps:
            return (f"reached the privacy budget (epsilon {self.epsilon():.3g} of {self.dp.epsilon:g} spent; "
                    "one more step would exceed it)")
        return None

    def summary(self) -> dict[str, Any]:
        """What the run's metadata says about its privacy (saved beside every network)."""
        return {
            "epsilon": round(self.epsilon(), 4), "delta": self.delta, "epsilon_budget": self.dp.epsilon,
            "noise_multiplier": self.noise, "max_grad_norm": self.dp.max_grad_norm,
            "sample_rate": self.sample_rate, "d_steps": self.d_steps_taken, "accountant": self.dp.accountant,
            "records": self.n_records,
            "labels": (self.dp.labels if self.num_classes else None),
            "label_noise": (self.dp.label_noise if self.num_classes and self.dp.labels == "histogram" else None),
        }

    @property
    def class_counts(self) -> list[int] | None:
        """The released class counts (histogram mode), the only label information G's metadata may hold."""
        return self.released.counts if self.released else None

    def state_dict(self) -> dict[str, Any]:
        released = self.released
        return {"secret_seed": self.secret_seed, "noise": self.noise, "accountant": self.accountant.state_dict(),
                "label_probs": released.probs.tolist() if released else None,
                "label_counts": released.counts if released else None}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        # the noise the run started with, even if a longer limit on resume would plan another: the budget
        # then stops the run where that noise spends it
        self._set_noise(float(saved["noise"]))
        self.secret_seed = int(saved["secret_seed"])
        self.accountant.load_state_dict(copy.deepcopy(saved["accountant"]))
        if self.released is not None:  # the release made at the start, not a new one (that would cost again)
            self.released = ReleasedLabels(torch.tensor(saved["label_probs"], dtype=torch.float32),
                                           saved["label_counts"], self.released.history)
            self.state.fake_label_probs = self.released.probs.to(self.state.device)

    def continue_after_rollback(self, ledger: dict[str, Any]) -> None:
        """After a divergence rollback reloaded an older checkpoint: the privacy spent since stays spent
        (``ledger`` is the state before the reload), and the steps that are taken again draw new batches
        and new noise (a new secret seed): reusing the same noise would correlate two counted releases."""
        self.accountant.load_state_dict(copy.deepcopy(ledger["accountant"]))
        self.secret_seed = draw_secret_seed()
