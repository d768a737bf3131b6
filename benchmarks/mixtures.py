"""Mode collapse on 2-D Gaussian mixtures (ring of 8, 5x5 grid of 25) for each recipe.

Small MLP G and D (model registry arch "mlp") are trained by ganforge's own training state
(``TrainState.from_config`` and ``TrainState.train_step``, as ``ganforge train`` builds and runs it) with
each recipe's loss, regularisers, optimiser settings, D steps, batch size and weight average; then
2,500 samples of the averaged G are scored: modes covered and the share of high-quality samples
(within 3 std of a mode), over several seeds.

    python benchmarks/mixtures.py                 # both mixtures, every recipe, 3 seeds
    python benchmarks/mixtures.py --steps 5000    # quicker (default 40,000)
    python benchmarks/mixtures.py --recipes classic --set loss.d=hinge --set train.ema_kimg=1   # a candidate

The networks take the recipe's D options that apply to vectors (spectral norm, dropout, minibatch
standard deviation), its losses, regularisers, optimisers, D steps per G step and weight average;
image augmentation does not apply to points and is left off.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from ganforge.configure import build_config
from ganforge.config import Config, parse_override, set_value
from ganforge.validation import validate
from ganforge.data.mixtures import MIXTURES
from ganforge.metrics.modes import mixture_modes
from ganforge.models import config_from_section
from ganforge.recipes import RECIPES
from ganforge.training.runtime import resolve_precision
from ganforge.training.state import TrainState

CPU = torch.device("cpu")


def recipe_config(name: str, overrides: list[str] = ()) -> Config:
    """The recipe with --set overrides, resolved as `ganforge train` resolves them."""
    cfg = build_config(name, None, [parse_override(text) for text in overrides])
    cfg.reg.augment, cfg.reg.ada = "", False  # image augmentation does not apply to 2-D points
    return validate(cfg)


def train_once(mixture: str, cfg: Config, seed: int, steps: int, batch: int | None = None,
               report_every: int = 0, label: str = "") -> dict:
    """Train once and score 2,500 samples; every ``report_every`` steps print G's and its average's scores."""
    cfg = copy.deepcopy(cfg)
    cfg.train.seed = seed  # weight initialisation and the per-step noise streams
    cfg.train.batch_size = batch = batch or cfg.train.batch_size  # the EMA half-life counts these
    # After validation, which admits only image architectures for `ganforge train`. The recipe's model
    # options that the MLPs share (spectral norm, dropout, minibatch stddev) carry over to them.
    set_value(cfg, "model.arch", "mlp")
    data = MIXTURES[mixture](100_000, seed=seed)
    points = torch.from_numpy(data.points)  # (100000, 2) float32
    model_cfg = config_from_section(cfg.model)
    # float32, as before: not the CPU "auto" choice (bfloat16 autocast where the CPU has it)
    state = TrainState.from_config(cfg, model_cfg, CPU, resolve_precision("fp32", CPU))
    gen = torch.Generator().manual_seed(seed)  # the real batches: points drawn with replacement
    for step in range(steps):
        batches = [(points[torch.randint(len(points), (batch,), generator=gen)], None)  # (B, 2), unlabelled
                   for _ in range(state.d_steps)]
        state.train_step(batches)
        if report_every and (step + 1) % report_every == 0 and step + 1 < steps:
            raw = _score(state.G, data, seed)
            avg = _score(state.sampling_generator, data, seed) if state.ema is not None else None
            print(f"{label} step {step + 1}: G {_brief(raw)}" + (f", average {_brief(avg)}" if avg else ""),
                  flush=True)
    return _score(state.sampling_generator, data, seed)


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
