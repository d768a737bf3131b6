"""The training loop: it composes the training state, the data order and the callbacks.

What one update does is :class:`~ganforge.training.state.TrainState`'s (and
:mod:`ganforge.training.steps`'); the loop feeds it real batches in the epoch order and, around
the steps, runs the pieces that each live in their own module: logging and the progress bar
(:mod:`.logging`), sample grids and periodic evaluation with best weights (:mod:`.callbacks`),
divergence rollback and collapse handling (:mod:`.health`), stopping rules and Ctrl-C
(:mod:`.stopping`) and checkpoints that resume bit for bit (:mod:`.run_checkpoints`).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import Config
from ..data import ImageDataset, load_dataset
from ..errors import ConfigError, GanforgeError
from ..extensions import TrainingExtension, extensions_for
from ..models import config_from_section
from ..pixels import from_uint8
from ..validation import validate
from . import distributed
from .callbacks import PeriodicEvaluation, SampleGrid
from .data_order import EpochOrder
from .health import HealthGuard
from .logging import RunLogger
from .prepare import check_saved_config, count_classes, data_fingerprint, fit_batch_to_data
from .run_checkpoints import RunCheckpoints, network_meta
from .runtime import Precision, backend_settings, resolve_device, resolve_precision, training_settings
from .state import TrainState
from .stopping import StopRules

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "penalty_d", "grad_d", "grad_g")


class Trainer:
    """Trains one run. ``Trainer(cfg, run_dir).run()``; ``resume=True`` continues its newest checkpoint.

    The extensions its configuration switches on (differential privacy, see ganforge/extensions.py) hook into
    the run at fixed points; the loop itself knows nothing of them."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, dataset: ImageDataset | None = None):
        # The library validates on its own (defaults such as the stopping rule are filled in here,
        # not only by the command line), on a copy: the caller's object is left as it was.
        self.cfg = cfg = validate(copy.deepcopy(cfg))
        self.run_dir = Path(run_dir)
        self.notices: list[str] = []  # one-line remarks for the user (printed by the CLI, logged as events)
        # the step statistics averaged over each log interval: the fixed ones and those of optional terms
        self.stat_names = STAT_NAMES + (("mode_seeking_g",) if cfg.reg.mode_seeking > 0 else ()) + (
            ("class_d", "class_g") if cfg.reg.class_weight > 0 else ())
        t = cfg.train
        self.ranks, rank_device = distributed.init(t.device)  # one process unless launched by torchrun
        self.extensions: list[TrainingExtension] = extensions_for(cfg)
        self.released_stats = self.stat_names  # those that may leave the run (a private run keeps D's on its records)
        for extension in self.extensions:
            self.released_stats = extension.released_statistics(self.released_stats)
        requested = t.precision
        for extension in self.extensions:
            extension.check_launch(self.ranks.world_size)
            requested = extension.precision(requested)
        self.device = rank_device or resolve_device(t.device)
        # (the process-wide TF32/cuDNN settings a GPU run wants are set only while it trains: see backend())
        self.precision = resolve_precision(requested, self.device, configure=False)

        data = dataset or load_dataset(
            cfg.data.source, resolution=cfg.data.resolution, channels=cfg.data.channels, fit=cfg.data.fit,
            max_bad_fraction=cfg.data.max_bad_fraction, limit=cfg.data.limit, cache_dir=cfg.data.cache_dir,
            progress=t.progress,
        )
        self.dataset = data
        notice = fit_batch_to_data(cfg.train, len(data))
        if notice:
            self.notices.append(notice)
        if resume:
            check_saved_config(self.run_dir, cfg)
        self.images = data.images.to(self.device)  # (N, C, R, R) uint8, decoded once, kept on the device
        if t.channels_last:  # batches indexed from it keep the format, and so do their float copies
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.num_classes = count_classes(data) if cfg.model.conditional else 0
        self.labels = data.labels.to(self.device) if self.num_classes else None  # (N,) int64 for a conditional G/D
        self.class_counts = (torch.bincount(data.labels, minlength=self.num_classes).tolist()
                             if self.num_classes else None)  # images per class, saved beside every network
        orders = [extension.data_order(len(data), t.batch_size, self.device) for extension in self.extensions]
        orders = [order for order in orders if order is not None]
        if len(orders) > 1:
            raise ConfigError("two training extensions each set the data order; they cannot be combined")
        self.order = orders[0] if orders else EpochOrder(len(data), t.batch_size, t.seed, self.ranks.rank,
                                                         self.ranks.world_size, self.device)
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
        if t.compile != "none":  # after DDP's wrapping: DDP's own optimiser splits the compiled graph at its buckets
            self.state.compile(t.compile)

        # The callbacks around the steps, each with its own state.
        self.grid = SampleGrid(t.grid_size, self.state.G.z_dim, t.seed + 1, self.num_classes, self.device)
        # rank 0 alone evaluates (and trains the domain network, once, into the cache), on the training device
        self.evaluation = PeriodicEvaluation(
            self._evaluation_data(data), t.eval_metrics, t.eval_n, t.eval_extractor, cfg.data.cache_dir, t.progress,
            self.num_classes, self.device) if t.eval_every and self.ranks.is_main else None
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of the best evaluation so far
        probe = torch.randperm(len(data), generator=torch.Generator().manual_seed(t.seed))[: max(t.grid_size, 2)]
        # an extension may forbid reading real images here (privacy): the monitor then reads G alone, unscaled
        reads_real = all(extension.reads_real_images for extension in self.extensions)
        self.health = HealthGuard(cfg, from_uint8(data.images[probe]) if reads_real else None)
        self.stops = StopRules(t, self.steps_per_epoch, self.ranks, self.device, self._stop_signal)
        for extension in self.extensions:
            extension.attach(self)
        self.checkpoints = RunCheckpoints(self.run_dir, t.keep_checkpoints, self._meta)
        self.elapsed = 0.0  # wall-clock seconds of the training loop, summed over resumed sessions
        self.fingerprint = data_fingerprint(data.images)
        if resume:
            self._load(self.checkpoints.latest())
        self._stop_reason: str | None = None

    def _evaluation_data(self, data: ImageDataset) -> ImageDataset:
        """What periodic evaluation compares with: train.eval_data fitted as the training images were, or
        the training images themselves."""
        t = self.cfg.train
        if not t.eval_every or t.eval_data is None:
            return data
        g = data.geometry
        return load_dataset(t.eval_data, resolution=g.resolution, channels=g.channels, fit=g.fit,
                            cache_dir=self.cfg.data.cache_dir, progress=t.progress)

    def _stop_signal(self) -> str | None:
        """A stop reason from outside the limits: a collapse (monitor.stop_on_collapse) or an extension's."""
        if self.health.collapse_stop:
            return self.health.collapse_stop
        reasons = (extension.stop_reason(self.cfg.train.d_steps) for extension in self.extensions)
        return next((reason for reason in reasons if reason), None)

    def extension(self, key: str) -> TrainingExtension | None:
        """The run's extension of that key (``privacy``, ...), or None."""
        return next((extension for extension in self.extensions if extension.key == key), None)

    def extension_summaries(self) -> dict[str, Any]:
        """{key: summary} of the extensions that have one (a private run's guarantee under ``privacy``)."""
        summaries = {extension.key: extension.summary() for extension in self.extensions}
        return {key: summary for key, summary in summaries.items() if summary is not None}

    # The training state's parts, by their familiar names.
    G = property(lambda self: self.state.G)
    D = property(lambda self: self.state.D)
    g_opt = property(lambda self: self.state.g_opt)
    d_opt = property(lambda self: self.state.d_opt)
    ema = property(lambda self: self.state.ema)
    opts = property(lambda self: self.state.opts)
    rollbacks = property(lambda self: self.health.rollbacks)

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def epoch(self) -> float:
        return self.state.real_batches / self.steps_per_epoch

    @property
    def sampling_generator(self) -> torch.nn.Module:
        """The weights used for samples: the moving average when enabled (with BatchNorm statistics
        recomputed for its weights in float32, see :mod:`ganforge.training.ema`), else G itself."""
        return self.state.sampling_generator

    def backend(self):
        """A context in which the process-wide torch settings this run wants hold (on CUDA: TF32 matrix maths
        and cuDNN's autotuner, GPU_TRAINING_SETTINGS), restored to the caller's on exit. :meth:`run` trains
        inside it; a caller that drives :meth:`train_step` itself may enter it too."""
        return backend_settings(**training_settings(self.device))

    def total_steps(self) -> int | None:
        """G steps at which the step or epoch limit is reached (None when only time limits)."""
        return self.stops.total

    # ------------------------------------------------------------------ one step

    def _real_batch(self, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real batch number real_batches + offset: images (B, C, R, R) in [-1, 1] and labels (B,) for a
        conditional model (else None)."""
        idx = self.order.indices(self.state.real_batches + offset)
        labels = self.labels[idx] if self.labels is not None else None
        return from_uint8(self.images[idx]), labels

    def train_step(self) -> dict[str, torch.Tensor]:
        """One G update (after d_steps D updates) on the next real batches of the epoch order."""
        return self.state.train_step([self._real_batch(k) for k in range(self.cfg.train.d_steps)])

    # ------------------------------------------------------------------ run

    def run(self, on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train until a limit is reached or Ctrl-C; returns a summary. The process-wide torch settings the
        run wants (:meth:`backend`) hold only while it runs."""
        with self.backend():
            return self._run(on_log)

    def _run(self, on_log) -> dict[str, Any]:
        t = self.cfg.train
        main = self.ranks.is_main  # only rank 0 writes
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.run_dir / "config.json")
        logger = RunLogger(self.run_dir, total=self.stops.total, initial=self.step, max_time=self.stops.max_time,
                           progress=t.progress and main, tensorboard=t.tensorboard and main, write=main)
        sums = torch.zeros(len(self.stat_names), device=self.device)  # running sums between log lines
        steps_since_log, last_log = 0, time.perf_counter()
        last_ckpt_time = time.perf_counter()
        for notice in self.notices:
            logger.event(self.step, "notice", notice)
        self._stop_reason = self.stops.reason(self.step, self.elapsed)
        if main and self.checkpoints.latest() is None:
            self.save_checkpoint()  # step 0: a divergence can always roll back somewhere
        distributed.barrier()
        try:
            with self.stops.catching_interrupts():
                start = time.perf_counter()  # the time budget counts everything the loop does
                while not self._stop_reason:
                    stats = self.train_step()
                    sums += torch.stack([stats[k].float() for k in self.stat_names])
                    steps_since_log += 1
                    now = time.perf_counter()
                    self.elapsed += now - start
                    start = now

                    stop = self.stops.decide(self.step, self.elapsed)  # (under DDP: the ranks agree here)
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
                        self._collapse_warning(self.health.classes_dropped(results), logger)
                    if main and t.sample_every and self.step % t.sample_every == 0:
                        self.save_samples()
                    minutes_since_ckpt = (time.perf_counter() - last_ckpt_time) / 60
                    if main and (self.step % t.checkpoint_every == 0 or minutes_since_ckpt >= t.checkpoint_minutes):
                        self.save_checkpoint()
                        last_ckpt_time = time.perf_counter()
                    # one process also stops on what this step's logging or evaluation found
                    self._stop_reason = stop if self.ranks.enabled else self.stops.reason(self.step, self.elapsed)
        finally:
            logger.close()
        folder = None
        if main:
            self.save_samples()
            folder = self.save_checkpoint()
        distributed.barrier()  # the other ranks return once the final checkpoint exists
        return {"step": self.step, "reason": self._stop_reason, "checkpoint": str(folder),
                "elapsed": self.elapsed, "interrupted": self._stop_reason == "interrupted",
                **self.extension_summaries()}

    def _log_interval(self, means: torch.Tensor, steps: int, seconds: float, logger: RunLogger, on_log) -> None:
        """One log line, then the health checks: divergence (roll back or stop) and collapse (warn)."""
        t = self.cfg.train
        if self.ranks.enabled:  # every rank logs (and decides on) the same numbers: their mean
            means = distributed.mean(means.clone())
        values = means.tolist()  # the one host sync per interval
        record = {name: v for name, v in zip(self.stat_names, values) if name in self.released_stats}
        record.update(
            step=self.step, epoch=round(self.epoch, 4), elapsed=round(self.elapsed, 2),
            images_per_sec=round(steps * t.batch_size * t.d_steps * self.ranks.world_size / seconds, 1),
            lr_g=self.g_opt.param_groups[0]["lr"], lr_d=self.d_opt.param_groups[0]["lr"],
        )
        if self.opts.ada is not None:
            record["augment_p"] = round(float(self.opts.ada.p), 4)
        for extension in self.extensions:  # what a log line adds (a private run: its epsilon)
            record = extension.log_record(record)
        checked = record
        for extension in self.extensions:
            checked = extension.steering(checked)
        reason = self.health.divergence(checked, self.G, self.D)
        if reason is not None:
            logger.log(record)
            self._rollback(reason, logger)
            return
        # The live G is what collapses (the average lags it), and probing it needs no standing statistics.
        record["diversity"], warning = self.health.diversity(self.grid.images(self.G, self.precision))
        logger.log(record)
        self._collapse_warning(warning, logger)
        if on_log:
            on_log(record)

    def _collapse_warning(self, warning: str | None, logger: RunLogger) -> None:
        if warning:
            logger.event(self.step, "collapse_warning", warning)
            self.health.note_collapse(warning)

    def _rollback(self, reason: str, logger: RunLogger) -> None:
        """Reload the newest checkpoint (only healthy ones are written) with lower learning rates."""
        folder = self.checkpoints.latest()
        counters = self.health.begin_rollback(reason, self.step, folder)  # raises when none is left
        diverged_at = self.step
        distributed.barrier()  # every rank rolls back (they saw the same mean losses) to rank 0's checkpoint
        tokens = [extension.before_rollback() for extension in self.extensions]
        self._load(folder)
        for extension, token in zip(self.extensions, tokens):  # (privacy: what was spent stays spent)
            extension.after_rollback(token)
        detail = self.health.finish_rollback(counters, self.state)
        logger.event(self.step, "rollback",
                     f"diverged at step {diverged_at} ({reason}); rolled back to step {self.step} with {detail}")

    # ------------------------------------------------------------------ outputs

    def evaluate(self) -> dict[str, Any]:
        """Metrics of eval_n samples of the sampling generator against the training data; keeps the best G."""
        self.evaluation.best = self.best
        results, improved = self.evaluation(self.sampling_generator, self.state.G.z_dim, self.step)
        self.best = self.evaluation.best
        if improved:
            self.checkpoints.save_best(self.sampling_generator, self.best)
        return results

    def save_samples(self) -> Path:
        """A grid from the fixed noise: samples/step-NNNNNNNN.png (and samples/latest.png)."""
        return self.grid.save(self.sampling_generator, self.precision, self.dataset.geometry.restore,
                              self.run_dir / "samples", self.step)

    def _meta(self, fmt: str) -> dict[str, Any]:
        """The JSON beside each saved network: enough to rebuild and sample it."""
        # the data's class proportions, for sampling with --class-mix data (an extension may replace them)
        counts = self.class_counts
        for extension in self.extensions:
            counts = extension.class_counts(counts)
        return network_meta(fmt, self.cfg.model.arch, self.model_cfg, self.dataset.geometry, self.dataset.class_names,
                            counts, self.step, self.extension_summaries())

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint unless the weights are no longer finite (the last good one stays the newest)."""
        return self.checkpoints.save(self.state, {
            "elapsed": self.elapsed,
            "data_fingerprint": self.fingerprint,
            "precision": self.precision.name,  # as resolved: resume keeps it unless the user changes it
            "fixed_noise": self.grid.noise.cpu(),
            "best": self.best,
            **self.health.state_dict(),
            **{extension.key: extension.state_dict() for extension in self.extensions},
        })

    def _load(self, folder: Path | None) -> None:
        saved = self.checkpoints.load(folder, self.state, self.fingerprint, self.order)
        self.stops.start_at(self.state.step, self.state.real_batches)  # the epoch limit from the data position
        saved_precision = saved.get("precision")
        if self.cfg.train.precision == "auto" and saved_precision and saved_precision != self.precision.name:
            self._set_precision(resolve_precision(saved_precision, self.device, configure=False))
            self.notices.append(f"keeping the run's precision {saved_precision} (auto would pick another here; "
                                "set train.precision to change it)")
        for extension in self.extensions:
            extension.load_state_dict(saved[extension.key])
        self.grid.noise = saved["fixed_noise"].to(self.device)
        self.elapsed = float(saved["elapsed"])
        self.best = saved.get("best")
        self.health.load_state_dict(saved)
        self.health.apply_lr_scale(self.state)

    def _set_precision(self, precision: Precision) -> None:
        self.precision = precision
        self.opts.precision = precision


def train(cfg: Config, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train a GAN as configured; write everything into ``run_dir``. Returns a summary."""
    return Trainer(cfg, run_dir, resume=resume).run()
