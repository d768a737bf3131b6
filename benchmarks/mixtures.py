"""Mode collapse on 2-D Gaussian mixtures (ring of 8, 5x5 grid of 25) for each recipe.

Small MLP G and D are trained with ganforge's own step functions and each recipe's loss,
regularisers, optimiser settings and weight average; then 2,500 samples are scored: modes
covered and the share of high-quality samples (within 3 std of a mode), over several seeds.

    python benchmarks/mixtures.py                 # both mixtures, every recipe, 3 seeds
    python benchmarks/mixtures.py --steps 2000    # quicker
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ganforge.config import Config, set_value, validate
from ganforge.data.mixtures import MIXTURES
from ganforge.metrics.modes import mixture_modes
from ganforge.models.layers import apply_spectral_norm
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator
from ganforge.recipes import RECIPES, recipe_overrides
from ganforge.training.ema import EMA
from ganforge.training.runtime import Precision
from ganforge.training.steps import StepOptions, d_step, g_step, make_optimizer


def recipe_config(name: str) -> Config:
    cfg = Config()
    for key, value in recipe_overrides(name):
        set_value(cfg, key, value)
    return validate(cfg)


def train_once(mixture: str, recipe: str, seed: int, steps: int, batch: int = 256) -> dict:
    cfg = recipe_config(recipe)
    data = MIXTURES[mixture](100_000, seed=seed)
    points = torch.from_numpy(data.points)
    torch.manual_seed(seed)
    G, D = MLPGenerator(), MLPDiscriminator()
    if cfg.model.d_spectral_norm:
        apply_spectral_norm(D)
    ema = EMA(G, cfg.train.ema_kimg, batch) if cfg.train.ema_kimg > 0 else None
    g_opt, d_opt = make_optimizer(G.parameters(), cfg.g_optim), make_optimizer(D.parameters(), cfg.d_optim)
    opts = StepOptions(d_loss=cfg.loss.d, g_loss=cfg.loss.g, precision=Precision("fp32", "cpu"), reg=cfg.reg,
                       rng=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        real = points[torch.randint(len(points), (batch,), generator=gen)]  # (B, 2)
        fake = G(torch.randn(batch, G.z_dim, generator=gen))  # (B, 2)
        d_step(D, d_opt, real, fake.detach(), opts, step=step)
        g_step(D, g_opt, fake, opts, real=real)
        if ema is not None:
            ema.update(G)
    sampler = ema.model if ema is not None else G
    with torch.no_grad():
        samples = sampler(torch.randn(2500, G.z_dim, generator=torch.Generator().manual_seed(1000 + seed)))
    return mixture_modes(samples.numpy(), data.centers, data.std)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--recipes", default=",".join(RECIPES))
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"{'mixture':<8} {'recipe':<8} {'modes covered per seed':<24} {'high-quality share':>19} {'s/run':>6}")
    for mixture in MIXTURES:
        for recipe in args.recipes.split(","):
            covered, hq, seconds = [], [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                result = train_once(mixture, recipe, seed, args.steps)
                seconds.append(time.perf_counter() - start)
                covered.append(f"{result['modes_covered']}/{result['modes_total']}")
                hq.append(result["high_quality_share"])
            print(f"{mixture:<8} {recipe:<8} {' '.join(covered):<24} "
                  f"{statistics.mean(hq):>12.3f} ± {np.std(hq):.3f} {statistics.mean(seconds):>6.1f}", flush=True)


if __name__ == "__main__":
    main()
