"""Stacked MNIST (1,000 modes): how many modes each recipe covers in a fixed CPU-time budget.

Builds a stacked training set from an MNIST file (three independently drawn digits as the red,
green and blue channels), trains one DCGAN per recipe through the ``ganforge`` command line for
the same wall-clock budget, draws 26,000 samples from each (VEEGAN / PacGAN's count) and counts
modes with a one-channel digit classifier (the domain network trained on the first 9,000
digits; its accuracy on the last 1,000 is printed). Real stacked images are scored the same way
as the ceiling the classifier allows.

    python benchmarks/stacked_mnist.py ../shared/data/mnist-10k.npz --minutes 20 --recipes stable,classic
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ganforge.data.stacked import stack_digits
from ganforge.metrics.domain import extract, load_or_train
from ganforge.metrics.modes import channel_digits, stacked_modes

SAMPLES = 26_000
CLASSIFIER_TRAIN = 9_000


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def last_step(run: Path) -> int:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if '"step"' in line]
    return max(steps) if steps else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mnist", help=".npz with images (N, 28, 28) uint8 and labels")
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--recipes", default="stable,classic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=60_000, help="stacked training images")
    p.add_argument("--work", default="local/stacked", help="folder for the data set, runs and samples")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--live-g", action="store_true",
                   help="also score G's last weights (not only the moving average) of each run")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    d = np.load(args.mnist)
    digits, labels = d["images"], d["labels"].astype(np.int64)
    x = torch.from_numpy(digits[:, None])  # (N, 1, 28, 28)
    net, _ = load_or_train(x[:CLASSIFIER_TRAIN], torch.from_numpy(labels[:CLASSIFIER_TRAIN]))
    _, probs = extract(net, x[CLASSIFIER_TRAIN:])
    accuracy = float((probs.argmax(1).numpy() == labels[CLASSIFIER_TRAIN:]).mean())
    print(f"digit classifier accuracy on {len(digits) - CLASSIFIER_TRAIN} held-out digits: {accuracy:.4f}")

    data = work / "stacked-train.npz"
    if not data.is_file():
        images, _ = stack_digits(digits, labels, args.train_size, seed=1)
        np.savez(data, images=images)
    real, _ = stack_digits(digits, labels, SAMPLES, seed=2)  # (26000, 28, 28, 3)
    rows = [("real stacked images", "-", stacked_modes(channel_digits(net, real.transpose(0, 3, 1, 2))))]

    for recipe in args.recipes.split(","):
        run = work / "runs" / f"{recipe}-seed{args.seed}"
        samples = work / f"{recipe}-seed{args.seed}.npz"
        if not samples.is_file():
            extra = [a for o in args.overrides for a in ("--set", o)]
            ganforge("train", "--data", str(data), "--recipe", recipe, "--max-time", f"{args.minutes}m",
                     "--seed", str(args.seed), "--out", str(run), "--sample-every", "1000", *extra)
            ganforge("sample", str(run), "--n", str(SAMPLES), "--out", str(samples), "--seed", "1")
        def modes_of(path: Path) -> dict:
            fake = np.load(path)["images"]  # (26000, 28, 28, 3)
            return stacked_modes(channel_digits(net, fake.transpose(0, 3, 1, 2)))

        rows.append((f"{recipe} ({args.minutes:g} min)", str(last_step(run)), modes_of(samples)))
        if args.live_g:
            live = work / f"{recipe}-seed{args.seed}-live.npz"
            if not live.is_file():
                ganforge("sample", str(run), "--n", str(SAMPLES), "--out", str(live), "--seed", "1", "--no-ema")
            rows.append(("  live G", str(last_step(run)), modes_of(live)))

    print(f"\n{'samples':<24} {'G steps':>8} {'modes covered':>14} {'KL to uniform':>14}")
    for name, steps, r in rows:
        print(f"{name:<24} {steps:>8} {r['modes_covered']:>9}/{r['modes_total']} {r['kl']:>14.3f}")


if __name__ == "__main__":
    main()
