"""One-run canary audit: does a run whose noise is switched off fail the audit, and a private run pass?

Two runs of the ``dp`` recipe on the same images, canaries, coins and steps (ganforge.privacy.canary):

* ``noise-off``: the noise multiplier at 1e-6 (the config accepts no 0), clipping and Poisson sampling kept.
  Its "claim" in the table is the epsilon that ``--dp-epsilon E`` plans for the same data and steps: the run
  is what that claim would cover if the noise were lost (a bug). Its own accountant (RDP: the PRV accountant
  cannot represent sigma = 1e-6) reports an astronomical epsilon, printed beside it.
* ``private``: ``--dp-epsilon E``; its claim is the epsilon its accountant reports.

Each run's final D scores the canaries, the k+ highest are guessed members, and the correct guesses give a
lower bound on epsilon at the runs' delta (95% confidence). The noise-off bound should be far above E; the
private one must stay below it.

    python benchmarks/canary_audit.py ../shared/data/mnist-10k.npz --limit 1000 --canaries 1000 --max-steps 2000
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganforge.config import parse_override
from ganforge.configure import build_config
from ganforge.data import load_dataset
from ganforge.privacy import accounting
from ganforge.privacy.canary import canary_audit, draw_coins
from ganforge.training.runtime import cpu_name

NOISE_OFF = 1e-6  # the smallest noise worth naming: dp.noise must be positive


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="training images (their first --limit)")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--canaries", type=int, default=1000, help="m: canaries, each joins with probability 1/2")
    p.add_argument("--k-pos", type=int, help="guess 'member' for this many highest scores (default m/5)")
    p.add_argument("--k-neg", type=int, default=0, help="guess 'non-member' for this many lowest scores")
    p.add_argument("--canary-source", help="canary images (default: uniformly random pixels)")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--epsilon", type=float, default=1.0, help="the private run's budget (the claim)")
    p.add_argument("--delta", type=float, default=1e-5,
                   help="delta of both runs: the bound's delta term is 2 m delta, so keep it well below 1/(2m)")
    p.add_argument("--seed", type=int, default=0, help="the canaries and the coins (both runs share them)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="options for both runs on top of the dp recipe")
    p.add_argument("--work", default="local/canary-audit")
    p.add_argument("--runs", default="noise-off,private")
    args = p.parse_args()
    torch.set_num_threads(1)

    common = [("data.source", args.data), ("data.limit", args.limit), ("train.max_steps", args.max_steps),
              ("dp.delta", args.delta), ("train.progress", False), ("train.sample_every", 0),
              *[parse_override(o) for o in args.overrides]]
    variants = {"noise-off": [("dp.epsilon", None), ("dp.noise", NOISE_OFF), ("dp.accountant", "rdp")],
                "private": [("dp.epsilon", args.epsilon)]}
    data = load_dataset(args.data, limit=args.limit, progress=False)
    rows = {}
    for name in args.runs.split(","):
        cfg = build_config("dp", overrides=common + variants[name])
        run = Path(args.work) / name
        saved = run / "audit" / "canary.json"
        if not saved.is_file():
            start = time.perf_counter()
            canary_audit(cfg, run, args.canaries, args.k_pos, args.k_neg, args.canary_source, args.seed,
                         dataset=data)
            minutes = (time.perf_counter() - start) / 60
            saved.write_text(json.dumps({**json.loads(saved.read_text()), "minutes": minutes}, indent=2) + "\n")
        rows[name] = json.loads(saved.read_text())

    # the claim of --dp-epsilon E on these records (the training images plus the canaries the coins let in)
    records = len(data) + int(draw_coins(args.canaries, args.seed).sum())
    rate = cfg.train.batch_size / records
    planned = accounting.epsilon(
        [(accounting.plan_noise(args.epsilon, args.delta, rate, args.max_steps, "prv"), rate, args.max_steps)],
        args.delta, "prv")

    print(f"\none-run canary audit on {cpu_name()}: {len(data)} images of {args.data} + {args.canaries} canaries "
          f"({records - len(data)} included), {args.max_steps} steps, delta {args.delta:g}, 95% confidence")
    print(f"{'run':<10} {'sigma':>8} {'claimed eps':>12} {'accountant':>12} {'AUC':>6} {'guesses':>8} "
          f"{'correct':>8} {'eps lower bound':>16} {'max':>6} {'minutes':>8}")
    for name, r in rows.items():
        own = r["epsilon_claimed"]
        claim = planned if name == "noise-off" else own
        sigma = r["privacy"]["noise_multiplier"]
        print(f"{name:<10} {sigma:>8.3g} {claim:>12.3f} {own:>12.4g} {r['auc']:>6.3f} {r['guesses']:>8} "
              f"{r['correct']:>8} {r['epsilon_lower']:>16.3f} {r['epsilon_lower_max']:>6.2f} "
              f"{r.get('minutes', float('nan')):>8.1f}")


if __name__ == "__main__":
    main()
