"""Where a federation loses against centralised training: short variants run in one process and scored.

``benchmarks/federated_fashion.py`` measures whole federations (Flower, one process per site, 20+ minutes
each). This script asks narrower questions in minutes, with the same site and server code but without the
network: the sites of a finished ``ganforge federate simulate`` run (their shares of the images) train one
after another in this process, the server's step is applied as the ServerApp applies it, and the result is
scored with fd_domain (``--n`` samples against the held-out images, domain features trained on the training
images): G's moving average, and the live G with its BatchNorm statistics refitted over the standing noise.

Two starting points:

* ``--from replay``: the federation's second-newest global checkpoint and its sites' saved state (optimiser
  moments, counters), i.e. the start of its last round, replayed under other settings;
* ``--from scratch``: fresh weights and fresh sites (the federation folder only lends its split and its
  configuration).

Variants (any number, run one after another):

* ``final``: the federation's own newest global G, scored as the variants are (no training);

* ``fed:K:R:ETA``: R rounds of K local steps at every site, server learning rate ETA (``ETA/ETA_D``: D's
  parameters stepped by ETA_D, G's by ETA); stages joined by ``+`` run one after another
  (``fed:800:7:2+800:1:1``: seven rounds at η = 2, then one at η = 1);
* ``central:STEPS:BATCH``: one process on all the training images from the same start (replay: the optimiser
  state of ``--central``, the centralised run of the same recipe).

``--from scratch`` takes a learning rate for both networks after either (``fed:50:64:1:4e-4``); a replayed
variant keeps the one its saved optimisers hold.

    python benchmarks/federated_probe.py local/fed-fix/fed-iid-lr2-b16 fm-train.npz fm-test.npz \\
        --from replay --central local/fed-fix/central fed:400:1:2 fed:100:4:2 fed:400:1:1 central:400:64
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ganforge.config import Config
from ganforge.federated import weights
from ganforge.federated.server import FEDERATION_FILE, FederationConfig, GlobalRun
from ganforge.federated.site import Site
from ganforge.metrics.evaluate import Evaluator
from ganforge.metrics.images import load_at_own_size
from ganforge.models.batchnorm import recompute_batchnorm_stats
from ganforge.runs import latest_checkpoint
from ganforge.sampling import TrainedGenerator
from ganforge.training.loop import Trainer
from ganforge.training.runtime import cpu_name

FAR = 10 ** 6  # the step limit the probe's sites and central runs get: they stop when the probe says


class Scorer:
    def __init__(self, train: str, heldout: str, n: int):
        train_images, train_labels, _ = load_at_own_size(train, progress=False)
        real, labels, _ = load_at_own_size(heldout, n=10000, progress=False)
        self.evaluator = Evaluator(real, labels, train_images, train_labels, extractor="domain", progress=False)
        self.n = n

    def fd(self, G: torch.nn.Module, geometry, z_dim: int) -> float:
        images = TrainedGenerator(G, "dcgan", geometry, [], 0, z_dim).sample(self.n, seed=0)
        return self.evaluator(images, ["fd"])["fd_domain"]

    def __call__(self, state, geometry, z_dim: int) -> tuple[float, float]:
        """(live G with refitted BatchNorm statistics, G's moving average)."""
        live = copy.deepcopy(state.G)
        with torch.no_grad():
            recompute_batchnorm_stats(live, state.ema.noise_batches(torch.device("cpu")))
        return self.fd(live.eval(), geometry, z_dim), self.fd(state.ema.ready(), geometry, z_dim)


def site_folders(federation: Path) -> list[Path]:
    return sorted(p for p in (federation / "sites").iterdir() if (p / "data.npz").is_file())


def replay_start(federation: Path, work: Path) -> GlobalRun:
    """The federation's global run at its second-newest checkpoint, copied into ``work``."""
    copy_dir = work / "global"
    shutil.copytree(federation, copy_dir, ignore=shutil.ignore_patterns("sites", "logs", "samples", "eval"))
    folders = sorted((copy_dir / "checkpoints").glob("step-*"))
    if len(folders) < 2:
        raise SystemExit(f"{federation} keeps one global checkpoint: nothing to replay from")
    shutil.rmtree(folders[-1])
    (copy_dir / "checkpoints" / "latest").write_text(folders[-2].name + "\n")
    return GlobalRun.resume(copy_dir)


def make_sites(federation: Path, work: Path, replay: bool, fed_id: str) -> list[Site]:
    sites = []
    for folder in site_folders(federation):
        mine = work / folder.name
        if replay:  # the site's saved state at the end of the federation
            shutil.copytree(folder / fed_id, mine / fed_id)
        sites.append(Site((folder / "data.npz").resolve(), mine, name=folder.name))
    return sites


def federate(run: GlobalRun, sites: list[Site], fed_id: str, k: int, rounds: int, eta: float,
             eta_d: float | None = None) -> None:
    """``rounds`` rounds of ``k`` steps at every site; the server steps by ``eta`` (``eta_d``: D's own)."""
    run.fed.server_lr, run.fed.final_server_lr = eta, None  # the server steps by the federation's rate of each round
    d_tensors = [name.startswith("discriminator.") for name, _ in weights.exchanged_tensors(run.state.networks())]
    for _ in range(rounds):
        start = run.weights()
        results = [s.train_round(fed_id, run.cfg, FAR // k, k, len(sites), start, server_lr=eta) for s in sites]
        mean = weights.weighted_mean([r.update for r in results], [r.weight for r in results])
        if eta_d is not None and eta_d != eta:  # D's parameters stepped by eta_d (no momentum in the probe)
            if run.server_step.momentum:
                raise SystemExit("a separate D rate is probed without server momentum")
            mean = [d * (eta_d / eta) if is_d and moved else d for d, is_d, moved in
                    zip(mean, d_tensors, run.server_step.stepped)]
        run.finish_round([(r.weight, r.metrics) for r in results], 0, 0.0, {}, mean_update=mean)  # as the ServerApp


def with_lr(run: GlobalRun, lr: float | None) -> None:
    """Both networks' learning rate for the variant (scratch only: a resumed optimiser keeps its own)."""
    if lr is not None:
        run.cfg.g_optim.lr = run.cfg.d_optim.lr = lr


def central(run: GlobalRun, train: str, work: Path, steps: int, batch: int, reference: Path | None) -> Trainer:
    """``steps`` steps of one process on all of ``train`` from the global weights (replay: the optimiser state
    of the centralised run ``reference``)."""
    folder = work / "central"
    if reference is not None:
        shutil.copytree(reference, folder, ignore=shutil.ignore_patterns("samples", "eval"))
        saved = json.loads((folder / "config.json").read_text())
        saved["train"].update(max_steps=FAR, batch_size=batch)
        (folder / "config.json").write_text(json.dumps(saved))
        cfg = Config.load(folder / "config.json")
    else:
        cfg = Config.from_dict(run.cfg.to_dict())
        cfg.data.source = str(Path(train).resolve())
        cfg.train.batch_size, cfg.train.max_steps = batch, FAR
    cfg.train.progress, cfg.train.tensorboard, cfg.train.eval_every, cfg.train.sample_every = False, False, 0, 0
    trainer = Trainer(cfg, folder, resume=reference is not None)
    weights.load_arrays(trainer.state.networks(), run.weights())
    trainer.state.ema.stale = trainer.state.ema.has_batchnorm
    for _ in range(steps):
        trainer.train_step()
    return trainer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("federation", help="a finished `ganforge federate simulate` run folder")
    ap.add_argument("train", help="all the training images (the domain features, the central variants)")
    ap.add_argument("heldout", help="held-out images to score against")
    ap.add_argument("variants", nargs="+", help="final, fed:K:R:ETA or central:STEPS:BATCH")
    ap.add_argument("--from", dest="start", choices=["replay", "scratch"], default="replay")
    ap.add_argument("--central", help="replay: the centralised run whose optimiser state central variants take")
    ap.add_argument("--n", type=int, default=5000, help="samples per score")
    args = ap.parse_args()

    federation = Path(args.federation)
    fed_id = json.loads((federation / FEDERATION_FILE).read_text())["id"]
    if latest_checkpoint(federation) is None:
        raise SystemExit(f"{federation} holds no global checkpoint")
    scorer = Scorer(args.train, args.heldout, args.n)
    replay = args.start == "replay"
    print(f"# {federation} ({len(site_folders(federation))} sites), from {args.start}, on {cpu_name()}; "
          f"fd_domain of {args.n} samples vs {Path(args.heldout).name}")
    print(f"{'variant':<22} {'live G':>8} {'average':>8} {'seconds':>8}")
    if replay:
        with tempfile.TemporaryDirectory() as tmp:
            run = replay_start(federation, Path(tmp))
            print(f"{'start':<22} {'':>8} {scorer.fd(run.state.ema.ready(), run.geometry, run.model_cfg.z_dim):8.3f}")
    for variant in args.variants:
        kind, _, spec = variant.partition(":")
        stages = [stage.split(":") for stage in spec.split("+")]  # fed: one or more K:R:ETA, one after another
        values = stages[0]
        lr = float(values.pop()) if len(stages) == 1 and len(values) == {"fed": 4, "central": 3}.get(kind) else None
        if lr is not None and replay:
            raise SystemExit(f"{variant}: a replayed variant keeps its saved optimisers' learning rate")
        if kind == "fed" and any(len(stage) != 3 for stage in stages):
            raise SystemExit(f"{variant}: stages are K:R:ETA (a learning rate only after a single stage)")
        began = time.perf_counter()
        if kind == "final":  # read only: the run's G, its BatchNorm statistics refitted on a copy
            run = GlobalRun.resume(federation)
            live, average = scorer(run.state, run.geometry, run.model_cfg.z_dim)
            print(f"{variant:<22} {live:8.3f} {average:8.3f} {time.perf_counter() - began:8.0f}", flush=True)
            continue
        site_id = fed_id if replay else "probe"  # the federation the sites' state is kept under
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            sites = make_sites(federation, work, replay, site_id)
            if replay:
                run = replay_start(federation, work)
            else:
                base = Config.load(federation / "config.json")
                fed = FederationConfig(id=site_id, rounds=1, local_steps=1).check()
                run = GlobalRun.create(work / "global", base, fed, sites[0].describe())
                with_lr(run, lr)
            if kind == "fed":
                for k, rounds, rate in stages:
                    eta, _, eta_d = rate.partition("/")
                    federate(run, sites, site_id, int(k), int(rounds), float(eta), float(eta_d) if eta_d else None)
                live, average = scorer(run.state, run.geometry, run.model_cfg.z_dim)
            elif kind == "central":
                reference = Path(args.central).resolve() if replay and args.central else None
                if replay and reference is None:
                    raise SystemExit("a replayed central variant needs --central RUN (its optimiser state)")
                trainer = central(run, args.train, work, int(values[0]), int(values[1]), reference)
                live, average = scorer(trainer.state, run.geometry, run.model_cfg.z_dim)
            else:
                raise SystemExit(f"unknown variant {variant!r}: fed:K:R:ETA or central:STEPS:BATCH")
        print(f"{variant:<22} {live:8.3f} {average:8.3f} {time.perf_counter() - began:8.0f}", flush=True)


if __name__ == "__main__":
    main()
