"""One site of a federation: local training on its own images between two aggregations.

A site is a run folder of its own (``WORK/<federation id>``) on its own data, trained by the ordinary
:class:`~ganforge.training.loop.Trainer`: at each round it loads the global weights into G, D and
G's average, takes ``local_steps`` G steps (each after ``train.d_steps`` D steps) on its images,
saves its checkpoint (optimiser moments, counters, random streams and, for a private run, the
accountant stay at the site from round to round) and hands back the change of its weights and its
aggregation weight (the images it holds, capped). Its images never leave it. Nothing here knows about the network:
:mod:`ganforge.federated.flower_client` carries the arrays, after
:mod:`ganforge.federated.site_policy` has checked the round.

The site's configuration is the server's, with the site's own data, seed and step limit
(``rounds x local_steps``, so that a private site plans its noise for the whole federation).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import Config
from ..data import ImageDataset, load_dataset
from ..errors import GanforgeError
from . import weights



@dataclass
class SiteUpdate:
    update: list[np.ndarray]  # local minus global weights, in weights.to_arrays order
    images: int  # real images D saw this round
    weight: int  # the aggregation weight: the images this site holds, at most the round's cap
    metrics: dict[str, float | str]  # seconds, steps, images seen; statistics it may share; a private site's epsilon


def site_seed(seed: int, name: str) -> int:
    """A site's own seed from the federation's seed and its name (sites must not draw the same noise)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:site:{name}".encode(), digest_size=4).digest(), "little")


class Site:
    """Local training of one site on ``data`` (any ganforge source), its state kept in ``work``."""

    def __init__(self, data: str, work: str | Path, name: str | None = None, cache_dir: str | None = None):
        self.data_source, self.work = str(data), Path(work)
        self.name = name or self.work.resolve().name
        self.cache_dir = cache_dir
        self._datasets: dict[tuple, ImageDataset] = {}  # by (resolution, channels)

    def run_dir(self, federation: str) -> Path:
        """This site's run in federation ``federation`` (a site may take part in several), always inside the work
        folder: the id comes from the server."""
        work = self.work.resolve()
        folder = (work / federation).resolve()
        if folder == work or work not in folder.parents:
            raise GanforgeError(f"refused: the federation id {federation[:40]!r} names a folder outside this site's "
                                "work folder")
        return folder

    def image_count(self) -> int:
        return len(self.dataset())

    def model_values(self, server_cfg: Config) -> int:
        """Values a round of ``server_cfg``'s model exchanges (G, D and G's average), counted without allocating
        them (PyTorch's meta device): what a site checks before building what a server asks for."""
        import torch

        from ..models import build_discriminator, build_generator, config_from_section

        data = self.dataset()
        cfg = server_cfg.model
        num_classes = len(data.class_names) if cfg.conditional else 0
        try:
            model_cfg = config_from_section(cfg, resolution=data.geometry.resolution, channels=data.geometry.channels,
                                            num_classes=num_classes)
            with torch.device("meta"):
                g, d = build_generator(cfg.arch, model_cfg), build_discriminator(cfg.arch, model_cfg)
        except (ValueError, TypeError, KeyError) as exc:
            raise GanforgeError(f"refused: the server's model cannot be built here ({exc})") from None
        count = lambda net: sum(t.numel() for t in net.state_dict().values() if t.is_floating_point())  # noqa: E731
        t = server_cfg.train
        averaged = t.ema_kimg > 0 or (server_cfg.schedule.ema_kimg_end or 0) > 0
        return count(g) * (2 if averaged else 1) + count(d)

    def dataset(self, resolution: int | None = None, channels: int | None = None) -> ImageDataset:
        key = (resolution, channels)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(self.data_source, resolution=resolution, channels=channels,
                                               cache_dir=self.cache_dir, progress=False)
        return self._datasets[key]

    def describe(self) -> dict[str, Any]:
        """What the server needs to build the networks: the data's geometry and classes (no image)."""
        data = self.dataset()
        return {"geometry": data.geometry.to_dict(), "class_names": list(data.class_names), "images": len(data)}

    def config(self, server_cfg: Config, rounds: int, local_steps: int) -> Config:
        """The server's configuration made this site's."""
        cfg = Config.from_dict(server_cfg.to_dict())
        cfg.data.source = self.data_source
        cfg.data.limit = None
        t = cfg.train
        t.max_steps, t.max_epochs, t.max_time = rounds * local_steps, None, None
        t.seed = site_seed(t.seed, self.name)
        t.progress, t.tensorboard, t.eval_every, t.sample_every = False, False, 0, 0
        t.checkpoint_every, t.checkpoint_minutes, t.keep_checkpoints = 10 ** 9, 10 ** 9, 1
        return cfg

    def train_round(self, federation: str, server_cfg: Config, rounds: int, local_steps: int, sites: int,
                    global_weights: Sequence[np.ndarray] | Callable[[list[np.ndarray]], list[np.ndarray]],
                    server_lr: float = 1.0, weight_cap: int | None = None,
                    share_statistics: bool = True) -> SiteUpdate:
        """``local_steps`` G steps from ``global_weights`` (or from what that function returns given the site's
        own weights as the template of shapes: a decrypted aggregate); the site's state is saved before returning.
        ``sites`` take part in the round: G's average counts their images in each step, so its half-life in
        images means what it means in a centralised run (:meth:`~ganforge.training.ema.EMA.count_processes`),
        and it averages where the server's learning rate ``server_lr`` will take G
        (:meth:`~ganforge.training.ema.EMA.follow`).

        The aggregation weight is the images this site holds, at most ``weight_cap`` (default: the images a round
        shows D). The training statistics go back only with ``share_statistics`` (a plain round), and of a private
        site only those its run releases (``Trainer.released_stats``: post-processing, covered by its epsilon)."""
        from ..privacy.extension import private_training
        from ..training.loop import Trainer

        cfg = self.config(server_cfg, rounds, local_steps)
        data = self.dataset(cfg.data.resolution, cfg.data.channels)
        run_dir = self.run_dir(federation)
        resume = (run_dir / "config.json").is_file()
        trainer = Trainer(cfg, run_dir, resume=resume, dataset=data)
        private = private_training(trainer)
        if not resume:
            run_dir.mkdir(parents=True, exist_ok=True)
            trainer.cfg.save(run_dir / "config.json")
        state = trainer.state
        networks = state.networks()
        if callable(global_weights):
            global_weights = global_weights(weights.to_arrays(networks))
        weights.load_arrays(networks, global_weights)
        if state.ema is not None:
            state.ema.stale = state.ema.has_batchnorm
            state.ema.count_processes(sites)
            state.ema.follow(list(state.G.parameters()), server_lr)
        d_steps, batch = trainer.cfg.train.d_steps, trainer.cfg.train.batch_size
        start, sums, steps = time.perf_counter(), None, 0
        batches_before = state.real_batches
        with trainer.backend():  # the torch settings a run trains under (TF32 on a GPU), restored afterwards
            for _ in range(local_steps):
                if private is not None and private.budget_stop(d_steps):
                    break  # this site's privacy budget is spent: it hands back what it has
                stats = trainer.train_step()
                values = np.array([float(stats[k]) for k in trainer.stat_names])
                sums = values if sums is None else sums + values
                steps += 1
        seconds = time.perf_counter() - start
        trainer.elapsed += seconds
        local = weights.to_arrays(networks)
        if not weights.all_finite(local):
            raise GanforgeError(f"site {self.name}: the weights diverged (not finite) in this round")
        trainer.save_checkpoint()
        images = (state.real_batches - batches_before) * batch
        metrics: dict[str, float | str] = {"steps": float(steps), "seconds": seconds, "images_seen": float(images)}
        if steps and share_statistics:
            metrics.update((k, v) for k, v in zip(trainer.stat_names, (sums / steps).tolist())
                           if k in trainer.released_stats)
        if private is not None:  # this site's guarantee, about its own images
            metrics["epsilon"] = private.epsilon()
            metrics["privacy"] = json.dumps(private.summary())
        cap = weight_cap or local_steps * d_steps * batch
        weight = min(len(data), cap) if steps else 0  # a site whose budget was spent before the round: no weight
        return SiteUpdate(weights.difference(local, global_weights), images, weight, metrics)
