"""The training state and the step that advances it.

:class:`TrainState` is everything one run holds between steps: G, D, the averaged G, the
optimisers, the step options (losses, precision, regularisers, augmentation and its adaptive
probability), the counters and the random streams. :meth:`TrainState.train_step` advances it
by one G update on real batches handed to it. It does not know where the batches come from,
so the training loop, a DDP rank, a differential-privacy wrapper or a federated site can each
drive it: load a state, run k steps on their own batches, hand back the weights.

Randomness: the noise and the steps' own draws (augmentation, instance noise, penalty
interpolation) come from two generators on the device that are re-seeded from (seed, step,
stream) at every step, so the random streams of a step are a function of the seed and the step
number alone, on any device, and resuming needs only the counters.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..losses.regularizers import paired_halves
from ..runs import GENERATOR_EMA
from ..seeds import stream_seed
from .ema import EMA
from .schedule import Schedule
from .steps import StepOptions, call, d_step, g_step, needs_double_backward, path_length_step

ADA_INTERVAL = 4  # steps between adjustments of the adaptive augmentation probability
Batch = tuple[torch.Tensor, "torch.Tensor | None"]  # images (B, C, R, R) in [-1, 1], labels (B,) int64 or None


def _lazy(cfg, interval: int, adjust: bool):
    """The optimiser config for a network regularised every ``interval`` steps: with ``adjust``, StyleGAN2's
    correction for lazy regularisation (lr x c, Adam betas to the power c, c = k / (k + 1))."""
    if not adjust or interval <= 1:
        return cfg
    c = interval / (interval + 1)
    return dataclasses.replace(cfg, lr=cfg.lr * c, beta1=cfg.beta1 ** c, beta2=cfg.beta2 ** c)


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    opts: StepOptions
    z_dim: int
    seed: int = 0
    d_steps: int = 1  # D updates per G update
    ema: EMA | None = None
    step: int = 0  # G updates done
    # The data order's position: global real batches read, each world_size x batch_size images. Equal to D's
    # updates until a resume on another number of processes re-expresses it in the new global batch.
    real_batches: int = 0
    images_seen: int = 0  # real images given to D, all processes together: the clock every schedule reads
    rank: int = 0  # this process's rank and the number of processes (DDP, see training/distributed.py)
    world_size: int = 1
    batch_size: int = 0  # per-process real batch as configured (images_seen of checkpoints saved without it)
    G_train: nn.Module | None = None  # G and D as the steps call them (DDP-wrapped, compiled); None: G and D
    D_train: nn.Module | None = None
    D_penalty: nn.Module | None = None  # D for the steps whose penalty needs a double backward (eager); None: D_train
    D_g: nn.Module | None = None  # D as the G step calls it (compiled, never DDP-wrapped); None: D
    schedule: Schedule | None = None  # progress-dependent hyper-parameters (training/schedule.py)
    lr_scale: float = 1.0  # learning-rate multiplier left by divergence rollbacks (training/health.py)
    # What a wrapper may replace (differential privacy, privacy/engine.py): D's step, a fixed size for the
    # fake batch (so that the fakes do not depend on how many real records a Poisson batch drew; D's step
    # then gets real and fake batches of different sizes) and the distribution G's classes are drawn from
    # (None: the real batch's classes).
    d_step_fn: Callable[..., dict[str, torch.Tensor]] = d_step
    fake_batch: int | None = None
    fake_label_probs: torch.Tensor | None = None  # (K,)
    noise_rng: torch.Generator = field(init=False)
    base_lr: list[list[float]] = field(init=False)  # [G's, D's] param-group learning rates as built
    pl_mean: torch.Tensor | None = field(init=False)  # path-length regularisation's running target

    @classmethod
    def from_config(cls, cfg, model_cfg, device: torch.device, precision, rank: int = 0,
                    world_size: int = 1) -> "TrainState":
        """The state a run starts from: networks built by the registry from ``model_cfg`` (weights
        drawn from ``cfg.train.seed``), optimisers, step options and the averaged G, as ``cfg`` says."""
        from ..models import build_discriminator, build_generator
        from .augment import AdaptiveAugment, DiffAugment
        from .steps import make_optimizer

        t, arch = cfg.train, cfg.model.arch
        reg = copy.copy(cfg.reg)  # the steps' own: a schedule changes its gammas, not the run's config
        torch.manual_seed(t.seed)  # weight initialisation
        G = build_generator(arch, model_cfg).to(device)
        D = build_discriminator(arch, model_cfg).to(device)
        if t.channels_last:  # 4-D weights stored (N, H, W, C)-ordered; images follow in the training loop
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        if reg.pl_weight > 0 and not (hasattr(G, "mapping") and hasattr(G, "synthesis")):
            raise ConfigError(f"reg.pl_weight: path-length regularisation needs a style-based G (mapping and "
                              f"synthesis networks); {arch} has none")
        augment = None
        if reg.augment:  # with ADA, p starts at 0 (as in the reference) unless reg.augment_p says otherwise
            start_p = reg.augment_p if reg.augment_p is not None else (0.0 if reg.ada else 1.0)
            augment = DiffAugment(reg.augment.replace("color", "colour"), p=start_p)
        ada = AdaptiveAugment(target=reg.ada_target, speed_kimg=reg.ada_kimg, p=augment.p) if reg.ada else None
        opts = StepOptions(d_loss=cfg.loss.d, g_loss=cfg.loss.g, precision=precision, reg=reg, augment=augment,
                           ada=ada)
        num_classes = getattr(model_cfg, "num_classes", 0)
        averaged = t.ema_kimg > 0 or (cfg.schedule.ema_kimg_end or 0) > 0
        ema = EMA(G, t.ema_kimg, t.batch_size, z_dim=model_cfg.z_dim, num_classes=num_classes,
                  processes=world_size) if averaged else None
        d_lazy = reg.r_interval if (reg.r1_gamma > 0 or reg.r2_gamma > 0) else 1
        g_lazy = reg.pl_interval if reg.pl_weight > 0 else 1
        state = cls(G=G, D=D, g_opt=make_optimizer(G.parameters(), _lazy(cfg.g_optim, g_lazy, reg.lazy_adjust)),
                    d_opt=make_optimizer(D.parameters(), _lazy(cfg.d_optim, d_lazy, reg.lazy_adjust)), opts=opts,
                    z_dim=model_cfg.z_dim, seed=t.seed, d_steps=t.d_steps, ema=ema, rank=rank, world_size=world_size,
                    batch_size=t.batch_size)
        schedule = Schedule(cfg, state.g_opt, state.d_opt, reg, t.ema_kimg)
        state.schedule = schedule if schedule.active else None
        return state

    def __post_init__(self):
        self.noise_rng = torch.Generator(self.device)
        if self.opts.rng is None:
            self.opts.rng = torch.Generator(self.device)
        self.base_lr = [[group["lr"] for group in opt.param_groups] for opt in (self.g_opt, self.d_opt)]
        self.pl_mean = torch.zeros((), device=self.device) if self.opts.reg.pl_weight > 0 else None

    def compile(self, mode: str) -> None:
        """torch.compile G's and D's passes (``mode`` as torch.compile takes it: default, reduce-overhead,
        max-autotune). The compiled modules share their parameters with G and D. A D step whose penalty
        (R1, R2, WGAN-GP) takes an input gradient with ``create_graph`` needs a double backward, which
        compiled graphs do not support: those steps (one in r_interval for lazy R1) call the eager D."""
        G = self.G_train if self.G_train is not None else self.G
        D = self.D_train if self.D_train is not None else self.D
        self.D_penalty = D
        # dynamic=False: a run's shapes are fixed, and a process that trains a second run at another size
        # (a benchmark) would otherwise get shape-generic graphs, slower and not always compilable
        self.G_train = torch.compile(G, mode=mode, dynamic=False)
        self.D_train = torch.compile(D, mode=mode, dynamic=False)
        # the G step calls the plain D (it is not updated there, so DDP must not reduce its gradients)
        self.D_g = self.D_train if D is self.D else torch.compile(self.D, mode=mode, dynamic=False)

    def set_lr_scale(self, scale: float) -> None:
        """Learning rates = base x scale (x the schedule's factor, from the next step on)."""
        self.lr_scale = scale
        for opt, bases in zip((self.g_opt, self.d_opt), self.base_lr):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * scale

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @property
    def sampling_generator(self) -> nn.Module:
        """The averaged G with BatchNorm statistics fitted to it (float32) when kept, else G itself."""
        return self.ema.ready() if self.ema is not None else self.G

    def networks(self) -> dict[str, nn.Module]:
        """The modules a checkpoint or a federated update carries, by file name."""
        nets = {"generator": self.G, "discriminator": self.D}
        if self.ema is not None:
            nets[GENERATOR_EMA] = self.ema.model
        return nets

    # ------------------------------------------------------------------ randomness

    def seed_step(self) -> None:
        """Re-seed the noise and step generators for the current step. The noise stream is shared by
        the ranks, each taking its own slice; the step stream (augmentation, ...) is each rank's own.
        torch's global generators are seeded per step and rank too: what the networks draw themselves
        (dropout, StyleGAN2's noise inputs and style mixing) then also resumes bit for bit."""
        self.noise_rng.manual_seed(stream_seed(self.seed, self.step, 0))
        self.opts.rng.manual_seed(stream_seed(self.seed, self.step, 1 + 2 * self.rank))
        torch.manual_seed(stream_seed(self.seed, self.step, 2 + 2 * self.rank))

    def noise(self, n: int) -> torch.Tensor:
        """(n, z_dim): this rank's slice of the step's noise for n samples per rank, so that R ranks
        with batch B draw exactly what one process with batch R * B would."""
        z = torch.randn(n * self.world_size, self.z_dim, generator=self.noise_rng, device=self.device)
        return z[self.rank * n:(self.rank + 1) * n]

    # ------------------------------------------------------------------ the step

    def train_step(self, batches: Sequence[Batch]) -> dict[str, torch.Tensor]:
        """d_steps D updates, one per real batch, then one G update on the last fake batch (as in
        the original DCGAN loop). Fakes are drawn for the real batch's labels, so a conditional G
        sees the classes in the data's proportions. Returns detached 0-dim tensors."""
        if len(batches) != self.d_steps:
            raise ValueError(f"a step takes {self.d_steps} real batch(es), got {len(batches)}")
        self.seed_step()
        if self.schedule is not None:  # lr, beta2, gamma, EMA half-life, p for the images seen so far
            self.schedule.apply(self, self.images_seen)
        precision = self.opts.precision
        G = self.G_train if self.G_train is not None else self.G
        D = self.D_train if self.D_train is not None else self.D
        images_seen = 0
        for k, (real, labels) in enumerate(batches):
            last = k == len(batches) - 1
            n_fake = self.fake_batch or len(real)
            z = self.noise(n_fake)
            fake_labels = self._fake_labels(labels, n_fake)
            if self.opts.reg.mode_seeking > 0 and fake_labels is not None:  # each compared pair shares a class
                first, second = paired_halves(n_fake)
                fake_labels = fake_labels.clone()
                fake_labels[second] = fake_labels[first]
            with torch.set_grad_enabled(last), precision.autocast():
                fake = call(G, z, fake_labels)  # (n_fake, C, R, R); keeps its graph only for the G step
            D_k = self.D_penalty if (self.D_penalty is not None
                                     and needs_double_backward(self.opts.reg, self.real_batches)) else D
            stats = self.d_step_fn(D_k, self.d_opt, real, fake.detach(), self.opts, step=self.real_batches,
                                   labels=labels, fake_labels=fake_labels)
            self.real_batches += 1
            # a private run counts its expected batch: the schedules may not depend on the Poisson draw
            self.images_seen += (self.fake_batch or len(real)) * self.world_size
            images_seen += len(real) * self.world_size
        # D unwrapped: it is not updated in the G step, so DDP must not expect a reduction of its gradients
        D_g = self.D_g if self.D_g is not None else self.D
        stats.update(g_step(D_g, self.g_opt, fake, self.opts, real=real, labels=fake_labels, z=z))
        if self.pl_mean is not None and self.step % self.opts.reg.pl_interval == 0:  # lazy, as R1
            average = None
            if self.world_size > 1:  # G is called outside DDP here: average by hand
                from .distributed import mean as average
            stats["penalty_g"] = path_length_step(self.G, self.g_opt, z, fake_labels, self.opts, self.pl_mean,
                                                  average=average)
        if self.opts.ada is not None and (self.step + 1) % ADA_INTERVAL == 0:
            if self.world_size > 1:  # one signal, hence one probability, for all ranks
                from .distributed import total

                total(self.opts.ada.signal_sums())
            self.opts.ada.adjust(images_seen * ADA_INTERVAL)
            self.opts.augment.p = self.opts.ada.p
        if self.ema is not None:
            self.ema.update(self.G)
        self.step += 1
        return stats

    def _fake_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """(n,) classes for the fakes: the real batch's, or drawn from ``fake_label_probs`` when set."""
        if labels is None or self.fake_label_probs is None:
            return labels
        return torch.multinomial(self.fake_label_probs, n, replacement=True, generator=self.noise_rng)

    # ------------------------------------------------------------------ saving

    def state_dict(self) -> dict[str, Any]:
        """Everything but the network weights (those go to safetensors files, see :meth:`networks`)."""
        return {
            "step": self.step,
            "real_batches": self.real_batches,
            "images_seen": self.images_seen,
            "world_size": self.world_size,  # the unit of real_batches
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "rng_cpu": torch.get_rng_state(),  # the global generators (dropout); noise is seeded per step
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "ada": self.opts.ada.state_dict() if self.opts.ada is not None else None,
            "pl_mean": self.pl_mean.cpu() if self.pl_mean is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], order=None) -> None:
        """Restore a saved state, possibly saved by another number of processes: the images seen carry over
        (every schedule continues where it was), and ``order`` (the run's data order, see
        :meth:`~ganforge.training.data_order.EpochOrder.continue_from`) re-expresses the data position in
        this run's global batches. A state saved before these counters existed is taken to come from as many
        processes as now, which is what resuming assumed then."""
        world = int(state.get("world_size", self.world_size))
        self.step = int(state["step"])
        self.real_batches = int(state["real_batches"])
        self.images_seen = int(state.get("images_seen", self.real_batches * self.batch_size * world))
        if order is not None and world != self.world_size:
            self.real_batches = order.continue_from(self.real_batches, world)
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        torch.set_rng_state(state["rng_cpu"])
        if state.get("rng_cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        if self.opts.ada is not None:
            self.opts.ada.load_state_dict(state["ada"])
            if self.rank > 0:  # the saved signal since the last adjustment is rank 0's: sum it over ranks once
                self.opts.ada.signal_sums().zero_()
            self.opts.augment.p = self.opts.ada.p
        if self.pl_mean is not None:
            self.pl_mean.copy_(state["pl_mean"])
        if self.ema is not None:
            self.ema.stale = self.ema.has_batchnorm
