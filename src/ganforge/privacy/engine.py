"""What a training state becomes under differential privacy (DP-SGD on D, with Opacus).

The unit of privacy is one training record (one image, with its label in a conditional run); two data
sets are neighbours when one is the other plus one record (add/remove). The argument, step by step:

* Each D step draws its real batch by Poisson sampling (:mod:`.poisson`): every record joins with
  probability q, from a secret seed. The fakes are a fixed-size batch of G from the run's public noise
  stream, drawn before and apart from the real batch: they depend on G and D (already private, by
  induction over the steps) and public randomness, never on which records were drawn.
* D's update is ``(S_real + N(0, (sigma C)^2 I) + S_fake) / E[B]``. ``S_real`` is the sum over the
  drawn records of each record's own gradient (per-sample, from Opacus's ``GradSampleModule``, one
  forward and one backward pass over the real batch alone), each clipped to norm C. A record's term
  depends only on that record, D's current weights and the step's fake logits (public), since D has no
  batch-coupling layer and nothing in the real pass is drawn per batch position (:mod:`.checks` refuses
  BatchNorm, minibatch statistics, augmentation, instance noise, dropout and the paired relativistic
  loss). Adding a record therefore adds at most one term of norm <= C to ``S_real`` and changes no other
  term: the sensitivity of ``S_real`` is C, and the Gaussian noise makes the step (q, sigma)-private.
* ``S_fake`` (the fakes' gradients, clipped to C per image so that the two halves of D's loss keep
  their balance) is computed from public quantities only, so adding it after the noise is post-processing.
  So is dividing by E[B] = q N, for N public (as Opacus treats it).
* Opacus's accountant composes the steps; the optimizer's step hook advances it once per D step.
* G's classes come from a public distribution (:mod:`.labels`), never from the private batch, and G's
  loss reads D's outputs on fakes only: G and its average are private by post-processing.
* The noise and the sampling come from a secret seed drawn from the OS at the start (not the run's
  seed, which config.json shows) and kept in the checkpoint, so a resumed run continues bit for bit.

tests/privacy/test_sensitivity.py checks the bound on this step with neighbouring data sets.
"""
from __future__ import annotations

import contextlib
import copy
import secrets
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from ..config import PrivacyConfig
from ..losses import d_loss
from ..losses.regularizers import clip_weights_, grad_norm
from ..seeds import stream_seed
from ..training.state import TrainState
from ..training.steps import call, classifies
from . import require_opacus
from .accounting import check_delta, default_delta, plan_noise, quiet_accounting, steps_within
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
        if dp.delta is not None:
            check_delta(dp.delta, n_records)
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
        """One private D update, ``(S_real + noise + S_fake) / E[B]`` (the module doc's argument).

        real (B, C, R, R) from Poisson sampling, B possibly 0, with labels (B,) in a conditional run;
        fake (F, C, R, R) the step's fixed-size batch from public noise, with fake_labels (F,). D is the
        ``GradSampleModule``; the real and the fake pass each take their own forward and backward pass, so
        no per-sample gradient ever mixes a record with a fake or with another record."""
        self.noise_rng.manual_seed(stream_seed(self.secret_seed, step, NOISE_STREAM))
        optimizer, reg = self.optimizer, opts.reg
        optimizer.zero_grad(set_to_none=True)
        real, fake = real.detach().float(), fake.detach().float()
        with self._per_sample_gradients(), opts.precision.autocast():
            fake_logits = call(D, fake, fake_labels)  # (F,)
            anchor = torch.zeros(1, device=fake.device)  # a constant real logit: only the fake half's gradient
            d_loss(opts.d_loss, anchor, fake_logits, label_smoothing=reg.label_smoothing).backward()
            fake_sum = self._take_clipped_sum(len(fake))  # S_fake: public, added after the noise
            loss = class_loss = None
            if len(real):
                if classifies(opts, labels):
                    real_logits, real_classes = D(real, labels, classes=True)  # (B,), (B, K)
                else:
                    real_logits, real_classes = call(D, real, labels), None  # (B,)
                # the real half: fake_logits enter as constants, each record's gradient is its own term's
                loss = d_loss(opts.d_loss, real_logits, fake_logits.detach(), label_smoothing=reg.label_smoothing)
                total = loss
                if real_classes is not None:  # AC-GAN: D learns each record's own class
                    class_loss = F.cross_entropy(real_classes.float(), labels)
                    total = total + reg.class_weight * class_loss
                total.backward()
            self._fill_missing_grad_samples(len(real))  # B = 0: the noisy step the accountant counts all the same
        optimizer.pre_step()  # S_real: clip each record to C, sum, add N(0, (sigma C)^2), / E[B]; accountant
        for p, public in zip(optimizer.params, fake_sum):
            p.grad += public / optimizer.expected_batch_size
        optimizer.original_optimizer.step()
        if reg.clip_weights > 0:
            clip_weights_(self.state.D, reg.clip_weights)
        zero = torch.zeros((), device=fake.device)
        stats = {
            "loss_d": loss.detach() if loss is not None else zero,
            "penalty_d": zero,
            "grad_d": grad_norm(optimizer.params),
            "d_real": torch.sigmoid(real_logits.detach()).mean() if len(real) else zero,
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }
        if class_loss is not None:
            stats["class_d"] = class_loss.detach()
        return stats

    @contextlib.contextmanager
    def _per_sample_gradients(self):
        """Opacus's per-sample hooks on, for D's private step only (G's step backpropagates through D too)."""
        self.gsm.enable_hooks()
        try:
            with warnings.catch_warnings():  # D's first layer gets no input gradient here, as intended
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                yield
        finally:
            self.gsm.disable_hooks()

    def _fill_missing_grad_samples(self, n: int) -> None:
        """Zero per-sample gradients (n, *shape) for the parameters the last pass did not reach (D's class head
        in the fake pass, every parameter when no record was drawn)."""
        for p in self.optimizer.params:
            if getattr(p, "grad_sample", None) is None:
                p.grad_sample = torch.zeros((n, *p.shape), device=p.device, dtype=p.dtype)

    def _take_clipped_sum(self, n: int) -> list[torch.Tensor]:
        """The per-sample gradients of the last backward pass over n samples, each clipped to C and summed (one
        tensor per parameter); leaves the optimizer ready for the next pass."""
        optimizer = self.optimizer
        self._fill_missing_grad_samples(n)
        optimizer.clip_and_accumulate()
        sums = [p.summed_grad for p in optimizer.params]
        optimizer.zero_grad(set_to_none=True)
        return sums

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
