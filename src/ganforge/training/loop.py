"""The training loop: data on the device, D and G steps, logging, samples, checkpoints.

The loop owns everything that is not the maths of one update (that lives in
:mod:`ganforge.training.steps`): batching, stopping rules, the progress display, sample
grids from fixed noise, the JSONL log and checkpoints that resume bit for bit.
"""
from __future__ import annotations

import copy
import math
import signal
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..config import Config, parse_duration
from ..validation import validate
from ..data import ImageDataset, load_dataset
from ..errors import GanforgeError
from ..models import config_from_section
from ..pixels import from_uint8
from .checkpoint import (
    GENERATOR_FORMAT,
    latest_checkpoint,
    load_network_weights,
    load_state,
    save_best,
    save_checkpoint,
)
from .monitor import HealthMonitor, weights_finite
from .logging import RunLogger
from . import distributed
from .runtime import Precision, resolve_device, resolve_precision
from .state import TrainState
from .callbacks import PeriodicEvaluation, SampleGrid
from .data_order import EpochOrder
from .prepare import check_saved_config, count_classes, data_fingerprint, fit_batch_to_data

DISCRIMINATOR_FORMAT = "ganforge.discriminator/1"
STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "penalty_d", "grad_d", "grad_g")


class Trainer:
    """Trains one run. ``Trainer(cfg, run_dir).run()``; ``resume=True`` continues its newest checkpoint."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, dataset: ImageDataset | None = None):
        # The library validates on its own (defaults such as the stopping rule are filled in here,
        # not only by the command line), on a copy: the caller's object is left as it was.
        self.cfg = cfg = validate(copy.deepcopy(cfg))
        self.run_dir = Path(run_dir)
        self.notices: list[str] = []  # one-line remarks for the user (printed by the CLI, logged as events)
        t = cfg.train
        self.ranks, rank_device = distributed.init(t.device)  # one process unless launched by torchrun
        self.device = rank_device or resolve_device(t.device)
        self.precision = resolve_precision(t.precision, self.device)
        self.max_time = parse_duration(t.max_time)

        data = dataset or load_dataset(
            cfg.data.source,
            resolution=cfg.data.resolution,
            channels=cfg.data.channels,
            fit=cfg.data.fit,
            max_bad_fraction=cfg.data.max_bad_fraction,
            limit=cfg.data.limit,
            cache_dir=cfg.data.cache_dir,
            progress=t.progress,
        )
        self.dataset = data
        notice = fit_batch_to_data(cfg.train, len(data))
        if notice:
            self.notices.append(notice)
        if resume:
            check_saved_config(self.run_dir, cfg)
        self.images = data.images.to(self.device)  # (N, C, R, R) uint8, decoded once, kept on the device
        self.num_classes = count_classes(data) if cfg.model.conditional else 0
        self.labels = data.labels.to(self.device) if self.num_classes else None  # (N,) int64 for a conditional G/D
        self.order = EpochOrder(len(data), t.batch_size, t.seed, self.ranks.rank, self.ranks.world_size, self.device)
        self.steps_per_epoch = self.order.batches_per_epoch  # global real batches per epoch
        if self.steps_per_epoch == 0:
            raise GanforgeError(f"{len(data)} images are fewer than one batch of {t.batch_size} on each of "
                                f"{self.ranks.world_size} processes; lower train.batch_size or the process count")

        m = cfg.model  # model.arch's options; resolution, channels and classes come from the data
        self.model_cfg = config_from_section(m, resolution=data.geometry.resolution,
                                             channels=data.geometry.channels, num_classes=self.num_classes)
        self.state = TrainState.from_config(cfg, self.model_cfg, self.device, self.precision,
                                            rank=self.ranks.rank, world_size=self.ranks.world_size)
        if self.ranks.enabled:  # gradients averaged over the ranks; the weights start equal (DDP broadcasts them)
            self.state.G_train = distributed.wrap(self.state.G, self.device)
            self.state.D_train = distributed.wrap(self.state.D, self.device)
        self.grid = SampleGrid(t.grid_size, m.z_dim, t.seed + 1, self.num_classes, self.device)

        self.elapsed = 0.0  # wall-clock seconds of the training loop, summed over resumed sessions
        self.fingerprint = data_fingerprint(data.images)
        self.evaluation = PeriodicEvaluation(
            data, t.eval_metrics, t.eval_n, t.seed, t.eval_extractor, cfg.data.cache_dir, t.progress,
            self.num_classes) if t.eval_every else None
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of the best evaluation so far
        self.rollbacks, self.lr_scale = 0, 1.0  # divergence recoveries so far, learning-rate multiplier
        probe = torch.randperm(len(data), generator=torch.Generator().manual_seed(t.seed))[: max(t.grid_size, 2)]
        self.monitor = HealthMonitor(cfg.monitor, from_uint8(data.images[probe]))
        if resume:
            self._load(latest_checkpoint(self.run_dir))
        self._stop_reason: str | None = None
        self._interrupted = False  # set by the first Ctrl-C
        self._collapse_stop: str | None = None  # set by a collapse warning with monitor.stop_on_collapse

    def _set_precision(self, precision: Precision) -> None:
        self.precision = precision
        self.opts.precision = precision

    # The training state's parts, by their familiar names.
    G = property(lambda self: self.state.G)
    D = property(lambda self: self.state.D)
    g_opt = property(lambda self: self.state.g_opt)
    d_opt = property(lambda self: self.state.d_opt)
    ema = property(lambda self: self.state.ema)
    opts = property(lambda self: self.state.opts)
    noise_rng = property(lambda self: self.state.noise_rng)

    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    @property
    def real_batches(self) -> int:
        return self.state.real_batches

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> dict[str, Any]:
        """Metrics of eval_n samples of the sampling generator against the training data; keeps the best G."""
        self.evaluation.best = self.best
        results, improved = self.evaluation(self.sampling_generator, self.cfg.model.z_dim, self.precision, self.step)
        self.best = self.evaluation.best
        if improved:
            save_best(self.run_dir, self.sampling_generator, self._meta(GENERATOR_FORMAT), self.best)
        return results

    # ------------------------------------------------------------------ data

    @property
    def epoch(self) -> float:
        return self.real_batches / self.steps_per_epoch

    def _real_batch(self, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real batch number real_batches + offset: images (B, C, R, R) in [-1, 1] and labels (B,) for a
        conditional model (else None)."""
        idx = self.order.indices(self.real_batches + offset)
        labels = self.labels[idx] if self.labels is not None else None
        return from_uint8(self.images[idx]), labels

    def _noise(self) -> torch.Tensor:
        return self.state.noise(self.cfg.train.batch_size)

    # ------------------------------------------------------------------ one step

    def _seed_step(self) -> None:
        self.state.seed_step()

    def train_step(self) -> dict[str, torch.Tensor]:
        """One G update (after d_steps D updates) on the next real batches of the epoch order."""
        batches = [self._real_batch(k) for k in range(self.cfg.train.d_steps)]
        return self.state.train_step(batches)

    # ------------------------------------------------------------------ stopping

    def total_steps(self) -> int | None:
        """G steps at which the step or epoch limit is reached (None when only time limits)."""
        t = self.cfg.train
        bounds = []
        if t.max_steps is not None:
            bounds.append(t.max_steps)
        if t.max_epochs is not None:
            bounds.append(math.ceil(t.max_epochs * self.steps_per_epoch / t.d_steps))
        return min(bounds) if bounds else None

    def _should_stop(self, total: int | None) -> str | None:
        if self._interrupted:
            return "interrupted"
        if self._collapse_stop:
            return self._collapse_stop
        if total is not None and self.step >= total:
            return "reached the step/epoch limit"
        if self.max_time is not None and self.elapsed >= self.max_time:
            return "reached the time budget"
        return None

    def _decide_stop(self, total: int | None) -> str | None:
        """Whether to stop after this step. Several ranks stop together: the step limit is the same for
        all, and the other reasons (time budget, Ctrl-C, collapse) are agreed at log intervals."""
        reason = self._should_stop(total)
        if not self.ranks.enabled:
            return reason
        if total is not None and self.step >= total:
            return reason
        if self.step % self.cfg.train.log_every:
            return None
        stop = distributed.any_rank(reason is not None, self.device)  # every rank calls it at the same step
        return reason or ("stopped with the other processes" if stop else None)

    # ------------------------------------------------------------------ run

    def run(self, on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train until a limit is reached or Ctrl-C; returns a summary."""
        t = self.cfg.train
        main = self.ranks.is_main  # only rank 0 writes
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run_dir / "config.json")
        total = self.total_steps()
        logger = RunLogger(self.run_dir, total=total, initial=self.step, max_time=self.max_time,
                           progress=t.progress and main, tensorboard=t.tensorboard and main, write=main)
        sums = torch.zeros(len(STAT_NAMES), device=self.device)  # running sums between log lines
        steps_since_log, last_log = 0, time.perf_counter()
        last_ckpt_time = time.perf_counter()
        for notice in self.notices:
            logger.event(self.step, "notice", notice)
        previous_handler = signal.signal(signal.SIGINT, self._on_interrupt)
        self._stop_reason = self._should_stop(total)
        if main and latest_checkpoint(self.run_dir) is None:
            self.save_checkpoint()  # step 0: a divergence can always roll back somewhere
        distributed.barrier()
        try:
            start = time.perf_counter()  # the time budget counts everything the loop does
            while not self._stop_reason:
                stats = self.train_step()
                sums += torch.stack([stats[k].float() for k in STAT_NAMES])
                steps_since_log += 1
                now = time.perf_counter()
                self.elapsed += now - start
                start = now

                stop = self._decide_stop(total)  # (under DDP: the ranks agree here, at log intervals)
                if self.step % t.log_every == 0 or stop:
                    now = time.perf_counter()
                    self._log_interval(sums / steps_since_log, steps_since_log, now - last_log, logger, on_log)
                    sums.zero_()
                    steps_since_log, last_log = 0, time.perf_counter()
                logger.advance(self.step, self.elapsed)

                if main and t.eval_every and self.step % t.eval_every == 0:
                    results = self.evaluate()
                    logger.log_eval({"step": self.step, "epoch": round(self.epoch, 4), "eval": results},
                                    self.best)
                    self._collapse_warning(self.monitor.classes_dropped(results), logger)
                if main and t.sample_every and self.step % t.sample_every == 0:
                    self.save_samples()
                minutes_since_ckpt = (time.perf_counter() - last_ckpt_time) / 60
                if main and (self.step % t.checkpoint_every == 0 or minutes_since_ckpt >= t.checkpoint_minutes):
                    self.save_checkpoint()
                    last_ckpt_time = time.perf_counter()
                # one process also stops on what this step's logging or evaluation found
                self._stop_reason = stop if self.ranks.enabled else self._should_stop(total)
        finally:
            signal.signal(signal.SIGINT, previous_handler)
            logger.close()
        folder = None
        if main:
            self.save_samples()
            folder = self.save_checkpoint()
        distributed.barrier()  # the other ranks return once the final checkpoint exists
        return {"step": self.step, "reason": self._stop_reason, "checkpoint": str(folder),
                "elapsed": self.elapsed, "interrupted": self._stop_reason == "interrupted"}

    def _log_interval(self, means: torch.Tensor, steps: int, seconds: float, logger: RunLogger, on_log) -> None:
        """One log line, then the health checks: divergence (roll back or stop) and collapse (warn)."""
        t = self.cfg.train
        if self.ranks.enabled:  # every rank logs (and decides on) the same numbers: their mean
            means = distributed.mean(means.clone())
        record = dict(zip(STAT_NAMES, means.tolist()))  # the one host sync per interval
        record.update(
            step=self.step, epoch=round(self.epoch, 4), elapsed=round(self.elapsed, 2),
            images_per_sec=round(steps * t.batch_size * t.d_steps * self.ranks.world_size / seconds, 1),
            lr_g=self.g_opt.param_groups[0]["lr"], lr_d=self.d_opt.param_groups[0]["lr"],
        )
        if self.opts.ada is not None:
            record["augment_p"] = round(float(self.opts.ada.p), 4)
        reason = self.monitor.divergence(record)
        if reason is None and not weights_finite(self.G, self.D):
            reason = "the weights hold NaN or Inf"
        if reason is not None:
            logger.log(record)
            self._rollback(reason, logger)
            return
        # The live G is what collapses (the average lags it), and probing it needs no standing statistics.
        record["diversity"] = float(f"{self.monitor.diversity(self._fixed_noise_samples(self.G)):.4g}")
        warning = self.monitor.collapse(record["diversity"])
        logger.log(record)
        self._collapse_warning(warning, logger)
        if on_log:
            on_log(record)

    def _collapse_warning(self, warning: str | None, logger: RunLogger) -> None:
        if warning:
            logger.event(self.step, "collapse_warning", warning)
            if self.cfg.monitor.stop_on_collapse:
                self._collapse_stop = "stopped on mode collapse (monitor.stop_on_collapse)"

    def _rollback(self, reason: str, logger: RunLogger) -> None:
        """Reload the newest checkpoint (only healthy ones are written) with lower learning rates."""
        m = self.cfg.monitor
        folder = latest_checkpoint(self.run_dir)
        if not m.rollback or self.rollbacks >= m.max_rollbacks or folder is None:
            tried = f" after {self.rollbacks} rollback(s)" if self.rollbacks else ""
            raise GanforgeError(f"training diverged at step {self.step} ({reason}){tried}; "
                                f"last good checkpoint: {folder or 'none'}")
        diverged_at = self.step
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * m.rollback_lr_factor
        distributed.barrier()  # every rank rolls back (they saw the same mean losses) to rank 0's checkpoint
        self._load(folder)
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self._apply_lr_scale()
        logger.event(self.step, "rollback",
                     f"diverged at step {diverged_at} ({reason}); rolled back to step {self.step} with "
                     f"learning rates x{self.lr_scale:g} (rollback {self.rollbacks} of {m.max_rollbacks})")

    def _apply_lr_scale(self) -> None:
        for opt, base in ((self.g_opt, self.cfg.g_optim.lr), (self.d_opt, self.cfg.d_optim.lr)):
            for group in opt.param_groups:
                group["lr"] = base * self.lr_scale

    def _fixed_noise_samples(self, G: torch.nn.Module | None = None) -> torch.Tensor:
        """G's (default: the sampling generator's) outputs for the grid's fixed noise, (n, C, R, R) in [-1, 1]."""
        return self.grid.images(G if G is not None else self.sampling_generator, self.precision)

    def _on_interrupt(self, signum, frame) -> None:
        """First Ctrl-C: finish the current step, save and stop. Second: stop at once."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True

    # ------------------------------------------------------------------ outputs

    @property
    def sampling_generator(self) -> torch.nn.Module:
        """The weights used for samples: the moving average when enabled (with BatchNorm statistics
        recomputed for its weights, see :mod:`ganforge.training.ema`), else G itself.

        The statistics are computed in float32 whatever the training precision: the saved average
        is sampled in float32 by ``ganforge sample`` and ``load_generator``."""
        return self.state.sampling_generator

    def save_samples(self) -> Path:
        """A grid from the fixed noise: samples/step-NNNNNNNN.png (and samples/latest.png)."""
        return self.grid.save(self.sampling_generator, self.precision, self.dataset.geometry.restore,
                              self.run_dir / "samples", self.step)

    def _meta(self, fmt: str) -> dict[str, Any]:
        return {
            "format": fmt,
            "arch": self.cfg.model.arch,
            "model": self.model_cfg.to_dict(),
            "geometry": self.dataset.geometry.to_dict(),
            "class_names": list(self.dataset.class_names),
            "class_counts": torch.bincount(self.labels.cpu(), minlength=self.num_classes).tolist()
            if self.num_classes else None,  # the data's class proportions, for sampling with --classes data
            "step": self.step,
            "ganforge_version": __version__,
        }

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint unless the weights are no longer finite (the last good one stays the newest)."""
        if not weights_finite(self.G, self.D):
            return latest_checkpoint(self.run_dir)
        state = {
            **self.state.state_dict(),
            "elapsed": self.elapsed,
            "data_fingerprint": self.fingerprint,
            "precision": self.precision.name,  # as resolved: resume keeps it unless the user changes it
            "fixed_noise": self.grid.noise.cpu(),
            "best": self.best,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
            "monitor": self.monitor.state_dict(),
        }
        networks = {
            "generator": (self.G, self._meta(GENERATOR_FORMAT)),
            "discriminator": (self.D, self._meta(DISCRIMINATOR_FORMAT)),
        }
        if self.ema is not None:
            meta = {**self._meta(GENERATOR_FORMAT), "batchnorm_stats": "recomputed"}  # see training/ema.py
            networks["generator_ema"] = (self.sampling_generator, meta)
        return save_checkpoint(self.run_dir, self.step, networks, state, keep=self.cfg.train.keep_checkpoints)

    def _load(self, folder: Path | None) -> None:
        if folder is None:
            raise GanforgeError(f"{self.run_dir} holds no checkpoint to resume from")
        state = load_state(folder)
        if state["data_fingerprint"] != self.fingerprint:
            raise GanforgeError(
                f"the training images differ from those the run in {self.run_dir} started with; "
                "resume with the same data or start a new run"
            )
        for name, module in self.state.networks().items():
            load_network_weights(folder, name, module)
        self.state.load_state_dict(state)
        saved_precision = state.get("precision")
        if self.cfg.train.precision == "auto" and saved_precision and saved_precision != self.precision.name:
            self._set_precision(resolve_precision(saved_precision, self.device))
            self.notices.append(f"keeping the run's precision {saved_precision} (auto would pick another here; "
                                "set train.precision to change it)")
        self.grid.noise = state["fixed_noise"].to(self.device)
        self.elapsed = float(state["elapsed"])
        self.best = state.get("best")
        self.rollbacks, self.lr_scale = int(state["rollbacks"]), float(state["lr_scale"])
        self._apply_lr_scale()
        self.monitor.load_state_dict(state["monitor"])


def train(cfg: Config, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train a GAN as configured; write everything into ``run_dir``. Returns a summary."""
    return Trainer(cfg, run_dir, resume=resume).run()
