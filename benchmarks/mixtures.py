"""Mode collapse on 2-D Gaussian mixtures (ring of 8, 5x5 grid of 25) for each recipe.

Small MLP G and D are trained with ganforge's own step functions and each recipe's loss,
regularisers, optimiser settings, batch size and weight average; then 2,500 samples are scored: modes
covered and the share of high-quality samples (within 3 std of a mode), over several seeds.

    python benchmarks/mixtures.py                 # both mixtures, every recipe, 3 seeds
    python benchmarks/mixtures.py --steps 5000    # quicker (default 40,000)
    python benchmarks/mixtures.py --recipes classic --set loss.d=hinge --set train.ema_kimg=1   # a candidate

The networks take the recipe's D options that apply to vectors (spectral norm, dropout, minibatch
standard deviation), its losses, regularisers, optimisers, D steps per G step and weight average;
image augmentation does not apply to points and is left off.
"""
from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from ganforge.configure import build_config
from ganforge.config import Config, parse_override, validate
from ganforge.data.mixtures import MIXTURES
from ganforge.metrics.modes import mixture_modes
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.recipes import RECIPES
from ganforge.training.ema import EMA
from ganforge.training.runtime import Precision
from ganforge.training.steps import StepOptions, d_step, g_step, make_optimizer


def recipe_config(name: str, overrides: list[str] = ()) -> Config:
    """The recipe with --set overrides, resolved as `ganforge train` resolves them."""
    cfg = build_config(name, None, [parse_override(text) for text in overrides])
    cfg.reg.augment, cfg.reg.ada = "", False  # image augmentation does not apply to 2-D points
    return validate(cfg)


def train_once(mixture: str, cfg: Config, seed: int, steps: int, batch: int | None = None,
               report_every: int = 0, label: str = "") -> dict:
    """Train once and score 2,500 samples; every ``report_every`` steps print G's and its average's scores."""
    batch = batch or cfg.train.batch_size
    data = MIXTURES[mixture](100_000, seed=seed)
    points = torch.from_numpy(data.points)
    torch.manual_seed(seed)
    model_cfg = model_config("mlp", d_dropout=cfg.model.d_dropout, d_mbstd=cfg.model.d_mbstd,
                             d_spectral_norm=cfg.model.d_spectral_norm, g_spectral_norm=cfg.model.g_spectral_norm)
    G, D = build_generator("mlp", model_cfg), build_discriminator("mlp", model_cfg)
    ema = EMA(G, cfg.train.ema_kimg, batch) if cfg.train.ema_kimg > 0 else None
    g_opt, d_opt = make_optimizer(G.parameters(), cfg.g_optim), make_optimizer(D.parameters(), cfg.d_optim)
    opts = StepOptions(d_loss=cfg.loss.d, g_loss=cfg.loss.g, precision=Precision("fp32", "cpu"), reg=cfg.reg,
                       rng=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    d_updates = 0
    for step in range(steps):  # as Trainer.train_step: d_steps D updates, G updated on the last fake batch
        for k in range(cfg.train.d_steps):
            real = points[torch.randint(len(points), (batch,), generator=gen)]  # (B, 2)
            with torch.set_grad_enabled(k == cfg.train.d_steps - 1):
                fake = G(torch.randn(batch, G.z_dim, generator=gen))  # (B, 2)
            d_step(D, d_opt, real, fake.detach(), opts, step=d_updates)
            d_updates += 1
        g_step(D, g_opt, fake, opts, real=real)
        if ema is not None:
            ema.update(G)
        if report_every and (step + 1) % report_every == 0 and step + 1 < steps:
            raw, avg = _score(G, data, seed), _score(ema.model, data, seed) if ema is not None else None
            print(f"{label} step {step + 1}: G {_brief(raw)}" + (f", average {_brief(avg)}" if avg else ""),
                  flush=True)
    return _score(ema.model if ema is not None else G, data, seed)


def _score(sampler: torch.nn.Module, data, seed: int) -> dict:
    with torch.no_grad():
        samples = sampler(torch.randn(2500, sampler.z_dim, generator=torch.Generator().manual_seed(1000 + seed)))
    return mixture_modes(samples.numpy(), data.centers, data.std)


def _brief(result: dict) -> str:
    return f"{result['modes_covered']}/{result['modes_total']} modes, {result['high_quality_share']:.3f} high quality"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch", type=int, help="batch size (default: each recipe's train.batch_size)")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--mixtures", default=",".join(MIXTURES))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change an option of every recipe (a candidate); repeatable")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    p.add_argument("--report-every", type=int, default=0, metavar="N",
                   help="also print each run's scores every N steps (G and its average)")
    args = p.parse_args()
    torch.set_num_threads(1)
    recipes = args.recipes.split(",")
    configs = {r: recipe_config(r, args.overrides) for r in recipes}
    if args.overrides:
        print("overrides:", " ".join(args.overrides))
    print(f"{'mixture':<8} {'recipe':<8} {'modes covered per seed':<24} {'high-quality share per seed':<28} "
          f"{'mean ± std':>13} {'s/run':>6}")
    runs = [(m, r, seed) for m in args.mixtures.split(",") for r in recipes for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {run: pool.submit(_timed, run[0], configs[run[1]], run[2], args.steps, args.batch,
                                    args.report_every, f"{run[0]} {run[1]} seed {run[2]}")
                   for run in runs}
        for mixture in args.mixtures.split(","):
            for recipe in recipes:
                results = [futures[(mixture, recipe, seed)].result() for seed in range(args.seeds)]
                covered = " ".join(f"{r['modes_covered']}/{r['modes_total']}" for r in results)
                hq = [r["high_quality_share"] for r in results]
                hq_text = " ".join(f"{h:.3f}" for h in hq)
                seconds = statistics.mean(r["seconds"] for r in results)
                print(f"{mixture:<8} {recipe:<8} {covered:<24} {hq_text:<28} "
                      f"{statistics.mean(hq):>5.3f} ± {np.std(hq):.3f} {seconds:>6.1f}", flush=True)


def _timed(mixture: str, cfg: Config, seed: int, steps: int, batch: int, report_every: int, label: str) -> dict:
    start = time.perf_counter()
    result = train_once(mixture, cfg, seed, steps, batch, report_every, label)
    return {**result, "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    main()
