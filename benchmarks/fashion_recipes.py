"""Recipes side by side on Fashion-MNIST at equal wall-clock: FD, classes covered, precision/recall.

Each recipe trains through the ``ganforge`` command line for the same time budget and seed (runs
interleaved recipe by recipe within each seed, one at a time), then ``ganforge eval`` scores
10,000 samples against the held-out images with the domain network (trained on the run's
training images). Finished runs are reused when the script is started again.

    python benchmarks/fashion_recipes.py fm-train.npz fm-test.npz --minutes 10 --seeds 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train", help="training images (.npz with labels)")
    p.add_argument("heldout", help="held-out real images (.npz with labels)")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--recipes", default="classic,stable")
    p.add_argument("--n", type=int, default=10_000, help="generated images scored per run")
    p.add_argument("--work", default="local/fashion-recipes")
    args = p.parse_args()
    work = Path(args.work)
    recipes = args.recipes.split(",")
    results: dict[str, list[dict]] = {r: [] for r in recipes}
    for seed in range(args.seeds):
        for recipe in recipes:
            run, scores = work / f"{recipe}-seed{seed}", work / f"{recipe}-seed{seed}.json"
            if not scores.is_file():
                ganforge("train", "--data", args.train, "--recipe", recipe, "--max-time", f"{args.minutes}m",
                         "--seed", str(seed), "--out", str(run), "--no-progress")
                ganforge("eval", str(run), "--real", args.heldout, "--n", str(args.n),
                         "--metrics", "fd,pr,modes", "--json", str(scores))
            results[recipe].append(json.loads(scores.read_text()))

    print(f"\nFashion-MNIST, {args.minutes:g} min per run, {args.n} samples vs held-out, domain features")
    print(f"{'recipe':<10} {'seed':>4} {'G steps':>8} {'fd_domain':>10} {'precision':>10} {'recall':>8} {'classes':>8}")
    for recipe in recipes:
        for seed, r in enumerate(results[recipe]):
            print(f"{recipe:<10} {seed:>4} {r['step']:>8} {r['fd_domain']:>10.3f} {r['precision_domain']:>10.3f} "
                  f"{r['recall_domain']:>8.3f} {r['classes_covered']:>5}/{r['classes_total']}")
        fds = [r["fd_domain"] for r in results[recipe]]
        spread = statistics.stdev(fds) if len(fds) > 1 else 0.0
        print(f"{recipe:<10} {'mean':>4} {'':>8} {statistics.mean(fds):>10.3f} ± {spread:.3f}")
    if len(recipes) == 2:
        a, b = (statistics.mean(r["fd_domain"] for r in results[x]) for x in recipes)
        print(f"fd ratio {recipes[0]} / {recipes[1]}: {a / b:.2f}")


if __name__ == "__main__":
    main()
