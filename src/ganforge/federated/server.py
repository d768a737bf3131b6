"""The server's side of a federation, apart from the network: the global run folder.

:class:`GlobalRun` holds the global G, D and G's average and writes them into an ordinary run
folder after every round: ``config.json`` (the training configuration the sites train with),
``federation.json`` (rounds, local steps, aggregation), ``checkpoints/`` (``ganforge sample`` and
``ganforge eval`` read them as any run's; the step is the G steps each site has taken),
``samples/`` and ``metrics.jsonl`` (one line per round: the sites' mean losses, images, seconds,
bytes). It never sees an image: the geometry and classes of the data come from the sites' answers
to the first message (:func:`agree_on_data`).
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import Config
from ..data import Geometry
from ..errors import ConfigError, GanforgeError
from ..durable import write_json
from ..runs import ENCRYPTED_DIR, latest_checkpoint, read_network_meta
from . import weights
from .server_step import ServerStep

FEDERATION_FILE = "federation.json"
# ENCRYPTED_DIR (CKKS runs: the encrypted aggregate of the newest rounds) also tells sample and eval that the
# run folder's checkpoints hold the initial weights only (runs.find_checkpoint)


@dataclass
class FederationConfig:
    id: str = field(default_factory=lambda: secrets.token_hex(6))  # names the sites' local runs of this federation
    rounds: int = 10
    local_steps: int = 50  # G steps each site takes per round
    min_sites: int = 2  # sites a round needs (the federation waits for this many to start)
    round_timeout: float = 600.0  # seconds to wait for the sites' updates; then the round goes on without the rest
    secure_aggregation: bool = False  # Flower's SecAgg+ (see flower_secure.py)
    shares: float = 1.0  # SecAgg+: key shares per site (an int > 2, or a fraction of the sites)
    threshold: float = 0.5  # SecAgg+: shares needed to reconstruct (an int, or a fraction of the shares)
    clipping_range: float = 1.0  # SecAgg+: each exchanged value (a weight's change over one round) is clipped here
    quantization_range: int = 2 ** 22  # SecAgg+: levels over [-clipping_range, clipping_range]
    he: str | None = None  # "ckks": updates encrypted with TenSEAL, summed as ciphertexts (he.py)
    he_context: str | None = None  # the server's public CKKS context (no secret key)
    server_lr: float = 1.0  # the mean change is applied times this (1 with momentum 0: FedAvg; server_step.py)
    server_momentum: float = 0.0  # FedAvgM's momentum over rounds
    final_server_lr: float | None = None  # the last rounds' server learning rate (None: server_lr; 1: the plain mean)
    final_rounds: int = 1  # how many of the last rounds take final_server_lr
    max_site_images: int | None = None  # cap on a site's aggregation weight (None: the images a round shows D)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "FederationConfig":
        if not path.is_file():
            raise GanforgeError(f"{path} not found: not a federated run folder")
        return cls(**json.loads(path.read_text()))

    def server_lr_of(self, round_number: int) -> float:
        """The server learning rate of round ``round_number`` (from 1): ``final_server_lr`` for the last
        ``final_rounds`` rounds, ``server_lr`` before.

        Ending on a smaller step (1: the plain mean) lets the last rounds average the sites' models instead of
        extrapolating past them, as a centralised run ends on a decayed learning rate. After ``--resume
        --rounds`` with more rounds, the new last rounds take it (the old ones have already been applied)."""
        if self.final_server_lr is not None and round_number > self.rounds - self.final_rounds:
            return self.final_server_lr
        return self.server_lr

    def check(self) -> "FederationConfig":
        if self.rounds < 1 or self.local_steps < 1:
            raise ConfigError(f"rounds and local steps must be at least 1, got {self.rounds} and {self.local_steps}")
        if self.min_sites < 1:
            raise ConfigError(f"--min-sites must be at least 1, got {self.min_sites}")
        if self.secure_aggregation and self.min_sites < 2:
            raise ConfigError("secure aggregation needs at least 2 sites per round (--min-sites 2 or more)")
        if self.secure_aggregation and self.he:
            raise ConfigError("choose one of --secure-aggregation and --he: with CKKS the server sees no update at all")
        if self.he not in (None, "ckks"):
            raise ConfigError(f"--he must be ckks, got {self.he!r}")
        if not self.server_lr > 0 or not 0 <= self.server_momentum < 1:
            raise ConfigError(f"the server learning rate must be positive and its momentum in [0, 1), got "
                              f"{self.server_lr} and {self.server_momentum}")
        if self.final_server_lr is not None and not self.final_server_lr > 0:
            raise ConfigError(f"the last rounds' server learning rate must be positive, got {self.final_server_lr}")
        if self.final_rounds < 1:
            raise ConfigError(f"--final-rounds must be at least 1, got {self.final_rounds}")
        if self.he and (self.server_lr != 1 or self.server_momentum or self.final_server_lr not in (None, 1)):
            raise ConfigError("--he ckks takes plain FedAvg only: the server cannot scale or accumulate what it "
                              "cannot read (leave --server-lr, --final-server-lr and --server-momentum out)")
        if self.max_site_images is not None and self.max_site_images < 1:
            raise ConfigError(f"--max-site-images must be at least 1, got {self.max_site_images}")
        if self.clipping_range <= 0:
            raise ConfigError(f"the clipping range must be positive, got {self.clipping_range}")
        return self


def agree_on_data(answers: Sequence[dict[str, Any]], conditional: bool) -> dict[str, Any]:
    """The data description every site shares (geometry; classes for a conditional model), or a clear error."""
    if not answers:
        raise GanforgeError("no site answered: start the sites (ganforge federate site) and try again")
    first = answers[0]
    for other in answers[1:]:
        a, b = Geometry.from_dict(first["geometry"]), Geometry.from_dict(other["geometry"])
        if (a.resolution, a.channels) != (b.resolution, b.channels):
            raise GanforgeError(f"the sites' images differ: {a.channels} channels at {a.resolution} px on one site, "
                                f"{b.channels} at {b.resolution} on another; set --resolution and --channels")
        if conditional and first["class_names"] != other["class_names"]:
            raise GanforgeError("the sites name different classes; a conditional federation needs the same class "
                                f"list everywhere ({first['class_names']} vs {other['class_names']})")
    if conditional and not first["class_names"]:
        raise GanforgeError("model.conditional needs labelled data on every site")
    return {"geometry": first["geometry"], "class_names": first["class_names"]}


class GlobalRun:
    """The global networks and the server's run folder."""

    def __init__(self, run_dir: str | Path, cfg: Config, fed: FederationConfig, data: dict[str, Any]):
        from ..models import config_from_section
        from ..training.callbacks import SampleGrid
        from ..training.run_checkpoints import RunCheckpoints
        from ..training.runtime import resolve_precision
        from ..training.state import TrainState
        from ..validation import validate

        self.run_dir, self.fed = Path(run_dir), fed
        self.geometry = Geometry.from_dict(data["geometry"])
        self.class_names = list(data["class_names"]) if cfg.model.conditional else []
        cfg = Config.from_dict(cfg.to_dict())
        cfg.data.resolution, cfg.data.channels = self.geometry.resolution, self.geometry.channels
        cfg.train.max_steps = fed.rounds * fed.local_steps
        cfg.train.max_epochs = cfg.train.max_time = None
        self.cfg = validate(cfg)
        self.device = torch.device("cpu")
        self.precision = resolve_precision("fp32", self.device)
        self.model_cfg = config_from_section(self.cfg.model, resolution=self.geometry.resolution,
                                             channels=self.geometry.channels, num_classes=len(self.class_names))
        self.state = TrainState.from_config(self.cfg, self.model_cfg, self.device, self.precision)
        self.server_step = ServerStep(fed.server_lr, fed.server_momentum, weights.server_stepped(self.state.networks()))
        t = self.cfg.train
        self.grid = SampleGrid(t.grid_size, self.model_cfg.z_dim, t.seed + 1, len(self.class_names), self.device)
        self.checkpoints = RunCheckpoints(self.run_dir, t.keep_checkpoints, self._meta)
        self.round = 0
        self.images = 0  # real images seen by the sites' D, all rounds and sites
        self.elapsed = 0.0
        self.privacy: dict[str, Any] | None = None  # the private site with the largest epsilon: its summary

    # ------------------------------------------------------------------ folder

    @classmethod
    def create(cls, run_dir: str | Path, cfg: Config, fed: FederationConfig, data: dict[str, Any]) -> "GlobalRun":
        """A new run folder: the configurations, then the round-0 checkpoint (the initial weights)."""
        run = cls(run_dir, cfg, fed, data)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        if fed.he:  # before any checkpoint: the model will live at the sites, never in this folder
            (run.run_dir / ENCRYPTED_DIR).mkdir(exist_ok=True)
        run.cfg.save(run.run_dir / "config.json")
        fed.save(run.run_dir / FEDERATION_FILE)
        run.save()
        return run

    @classmethod
    def resume(cls, run_dir: str | Path, rounds: int | None = None) -> "GlobalRun":
        """The run in ``run_dir`` at its newest global checkpoint (``rounds``: a new total)."""
        run_dir = Path(run_dir)
        folder = latest_checkpoint(run_dir)
        if folder is None or not (run_dir / "config.json").is_file():
            raise GanforgeError(f"{run_dir} holds no federated checkpoint to resume from")
        fed = FederationConfig.load(run_dir / FEDERATION_FILE)
        if rounds is not None:
            fed.rounds = rounds
            fed.check().save(run_dir / FEDERATION_FILE)
        meta = read_network_meta(folder, "generator")
        run = cls(run_dir, Config.load(run_dir / "config.json"), fed,
                  {"geometry": meta["geometry"], "class_names": meta["class_names"]})
        saved = run.checkpoints.load(folder, run.state, "federated")
        run.round, run.images, run.elapsed = saved["round"], saved["images"], saved["elapsed"]
        run.privacy = saved.get("privacy")
        run.server_step.load_state_dict(saved.get("server_step"))
        run.grid.noise = saved["fixed_noise"]
        run._load_encrypted_progress()  # a CKKS run: its rounds went to encrypted/, not to checkpoints
        return run

    def _meta(self, fmt: str) -> dict[str, Any]:
        from ..training.run_checkpoints import network_meta

        return network_meta(fmt, self.cfg.model.arch, self.model_cfg, self.geometry, self.class_names,
                            None, self.state.step, {"privacy": self.privacy} if self.privacy is not None else None)

    def save(self) -> Path | None:
        self.state.step = self.round * self.fed.local_steps
        folder = self.checkpoints.save(self.state, {
            "round": self.round, "images": self.images, "elapsed": self.elapsed, "privacy": self.privacy,
            "fixed_noise": self.grid.noise, "data_fingerprint": "federated",
            "server_step": self.server_step.state_dict(),
        })
        self.grid.save(self.state.sampling_generator, self.precision, self.geometry.restore,
                       self.run_dir / "samples", self.state.step)
        return folder

    def log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ rounds

    def weight_cap(self) -> int:
        """The most a site's aggregation weight (the images it holds) may count: ``max_site_images``, by default
        the real images a site's D sees in a full round."""
        t = self.cfg.train
        return self.fed.max_site_images or self.fed.local_steps * t.d_steps * t.batch_size

    @property
    def finished(self) -> bool:
        return self.round >= self.fed.rounds

    def weights(self) -> list[np.ndarray]:
        return weights.to_arrays(self.state.networks())

    def load_weights(self, arrays: Sequence[np.ndarray]) -> None:
        """Make ``arrays`` (:func:`weights.to_arrays` order) the global networks. G's BatchNorm running statistics
        are then refitted to G's new weights over the standing noise, as G's average's are: the sites' mean
        statistics belong to none of the sites' Gs, and under a server learning rate not to the stepped G
        either, so ``ganforge sample --no-ema`` drew from a G normalised by the wrong statistics (on
        Fashion-MNIST with η = 2, fd_domain 25.9 with the mean statistics against 12.0 refitted). D's
        statistics stay the sites' mean: the server holds no real image to refit them with, and D trains on
        batch statistics."""
        from ..models.batchnorm import recompute_batchnorm_stats, standing_noise

        weights.load_arrays(self.state.networks(), arrays)
        with torch.no_grad():
            recompute_batchnorm_stats(self.state.G, standing_noise(self.cfg.train.batch_size, self.model_cfg.z_dim,
                                                                   len(self.class_names), self.device))
        if self.state.ema is not None:
            self.state.ema.stale = self.state.ema.has_batchnorm

    def finish_round(self, reports: Sequence[tuple[int, dict[str, Any]]], failures: int, seconds: float,
                     traffic: dict[str, int], mean_update: list[np.ndarray] | None = None,
                     encrypted: list[bytes] | None = None) -> dict[str, Any]:
        """Apply a round's aggregate (the sites' mean update, or under CKKS the encrypted sum, which is only
        stored), then save and log. ``reports``: (aggregation weight, metrics) of each site that answered; the
        images seen are the sites' ``images_seen``, and the statistics they shared are averaged by weight."""
        if encrypted is None:
            new_weights = self.server_step.apply(self.weights(), mean_update, self.fed.server_lr_of(self.round + 1))
            if not weights.all_finite(new_weights):
                raise GanforgeError(f"round {self.round + 1}: the aggregated weights are not finite")
            self.load_weights(new_weights)
        self.round += 1
        round_images = int(sum(m.get("images_seen", n) for n, m in reports))
        self.images += round_images
        self.elapsed += seconds
        record: dict[str, Any] = {"round": self.round, "step": self.round * self.fed.local_steps,
                                  "images": self.images, "sites": len(reports), "failures": failures,
                                  "seconds": round(seconds, 3),
                                  "images_per_sec": round(round_images / max(seconds, 1e-9), 1), **traffic}
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            values = [(n, m[key]) for n, m in reports if key in m]
            if values:
                record[key] = sum(n * v for n, v in values) / max(sum(n for n, _ in values), 1)
        private = [json.loads(m["privacy"]) for _, m in reports if "privacy" in m]
        if private:  # each site's guarantee covers its own images; the metadata keeps the weakest
            self.privacy = {**max(private, key=lambda p: p["epsilon"]), "sites": len(private)}
            record["epsilon_max"] = self.privacy["epsilon"]
        if encrypted is not None:
            self.save_encrypted(encrypted)
        else:
            self.save()
        self.log(record)
        return record

    # ------------------------------------------------------------------ CKKS

    def save_encrypted(self, chunks: list[bytes]) -> Path:
        """The encrypted aggregate of round ``self.round`` (the two newest rounds are kept)."""
        from .he import write_chunks

        folder = self.run_dir / ENCRYPTED_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"round-{self.round:06d}.ckks"
        write_chunks(path, chunks)
        write_json(folder / "progress.json", {"round": self.round, "images": self.images, "elapsed": self.elapsed,
                                              "privacy": self.privacy})
        for old in sorted(folder.glob("round-*.ckks"))[:-2]:
            old.unlink()
        return path

    def latest_encrypted(self) -> list[bytes] | None:
        """The newest encrypted aggregate, or None before the first round."""
        from .he import read_chunks

        files = sorted((self.run_dir / ENCRYPTED_DIR).glob("round-*.ckks"))
        return read_chunks(files[-1]) if files else None

    def _load_encrypted_progress(self) -> None:
        progress = self.run_dir / ENCRYPTED_DIR / "progress.json"
        if progress.is_file():
            saved = json.loads(progress.read_text())
            self.round, self.images, self.elapsed = saved["round"], saved["images"], saved["elapsed"]
            self.privacy = saved.get("privacy")
