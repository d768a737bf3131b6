"""Recipes side by side at equal wall-clock on a labelled data set: FD, precision/recall, classes, img/s, CAS.

Each recipe trains through the ``ganforge`` command line for the same time budget and seed (runs
interleaved recipe by recipe within each seed, one at a time), then ``ganforge eval`` scores
10,000 samples against the held-out images with the domain network (trained on the run's
training images). With ``--conditional`` every run is class-conditional and the table adds the
Classification Accuracy Score. Finished runs (and runs that trained for the whole budget but were not yet scored) are reused
when the script is started again. Written
for Fashion-MNIST; any training/held-out pair that ``ganforge`` reads works (CIFAR-10's zips too).

    python benchmarks/fashion_recipes.py fm-train.npz fm-test.npz --minutes 10 --seeds 2
    python benchmarks/fashion_recipes.py ../shared/data/cifar10-train-jpeg.zip \\
        ../shared/data/cifar10-test-jpeg.zip --minutes 30 --seeds 1 --recipes stable,sngan-small
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from ganforge.training.runtime import cpu_name


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def training_speed(run: Path) -> float:
    """Mean of the training images per second the run logged (NaN when none)."""
    rates = [json.loads(line).get("images_per_sec") for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r for r in rates if r]
    return statistics.mean(rates) if rates else float("nan")


def finished(run: Path, minutes: float) -> bool:
    """Whether ``run`` trained for its whole budget (then only its evaluation is missing)."""
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return False
    elapsed = [json.loads(line).get("elapsed") for line in metrics.read_text().splitlines()]
    return max((e for e in elapsed if e is not None), default=0.0) >= 0.98 * minutes * 60


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train", help="training images with labels (.npz, a folder or zip of class folders)")
    p.add_argument("heldout", help="held-out real images with labels")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--recipes", default="classic,stable")
    p.add_argument("--conditional", action="store_true", help="class-conditional runs (adds CAS)")
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
                if not finished(run, args.minutes):
                    ganforge("train", "--data", args.train, "--recipe", recipe, "--max-time", f"{args.minutes}m",
                             "--seed", str(seed), "--out", str(run), "--no-progress",
                             *(["--conditional"] if args.conditional else []))
                ganforge("eval", str(run), "--real", args.heldout, "--n", str(args.n),
                         "--metrics", "fd,pr,modes", "--json", str(scores))
            results[recipe].append({**json.loads(scores.read_text()), "img_s": training_speed(run)})

    kind = "class-conditional" if args.conditional else "unconditional"
    print(f"\n{Path(args.train).name}, {kind}, {args.minutes:g} min per run on {cpu_name()}, "
          f"{args.n} samples vs {Path(args.heldout).name}, domain features")
    cas = " " + f"{'CAS':>6}" if args.conditional else ""
    print(f"{'recipe':<16} {'seed':>4} {'G steps':>8} {'img/s':>7} {'fd_domain':>10} {'precision':>10} "
          f"{'recall':>8} {'classes':>8}{cas}")
    for recipe in recipes:
        for seed, r in enumerate(results[recipe]):
            cas = f" {r['cas']:>6.3f}" if args.conditional else ""
            print(f"{recipe:<16} {seed:>4} {r['step']:>8} {r['img_s']:>7.1f} {r['fd_domain']:>10.3f} "
                  f"{r['precision_domain']:>10.3f} {r['recall_domain']:>8.3f} "
                  f"{r['classes_covered']:>5}/{r['classes_total']}{cas}")
        fds = [r["fd_domain"] for r in results[recipe]]
        spread = statistics.stdev(fds) if len(fds) > 1 else 0.0
        print(f"{recipe:<16} {'mean':>4} {'':>8} {'':>7} {statistics.mean(fds):>10.3f} ± {spread:.3f}")
    base = statistics.mean(r["fd_domain"] for r in results[recipes[0]])
    for recipe in recipes[1:]:
        fd = statistics.mean(r["fd_domain"] for r in results[recipe])
        print(f"fd ratio {recipes[0]} / {recipe}: {base / fd:.2f}")


if __name__ == "__main__":
    main()
