"""Downstream utility of differentially private synthetic data, the standard protocol of the DP literature.

For each epsilon: train a class-conditional GAN with ``--recipe dp`` on the training images (delta 1e-5
for 60,000 images), draw as many labelled synthetic images as there are training images (balanced
classes), train a CNN on them alone (ganforge's domain classifier, its fixed recipe: nothing is tuned on
the test images) and report its accuracy on the real held-out images, with the training time (wall
minutes on all the machine's cores, summed over a run stopped and continued). A classifier trained on
the real training images gives the ceiling.

    python benchmarks/dp_utility.py local/fmnist-train.npz local/fmnist-test.npz --epsilons 10,1 --epochs 10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ganforge.metrics.cas import classification_accuracy_score
from ganforge.runs import latest_checkpoint, read_network_meta
from ganforge.training.runtime import cpu_name


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def last_record(metrics: Path) -> dict:
    """The last line of a run's metrics.jsonl."""
    return json.loads(metrics.read_text().strip().splitlines()[-1])


def labelled(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) uint8 images and (N,) labels of an .npz with 'images' (N, H, W[, C]) and 'labels'."""
    with np.load(path) as f:
        images, labels = f["images"], f["labels"]
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return images, labels.astype(np.int64)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train", help="training images with labels (.npz)")
    p.add_argument("heldout", help="held-out real images with labels (.npz)")
    p.add_argument("--epsilons", default="10,1")
    p.add_argument("--epochs", type=float, default=10, help="passes over the training data per private run")
    p.add_argument("--recipe", default="dp")
    p.add_argument("--delta", default="1e-5", help="delta of every run (the literature's 1e-5; the default below "
                   "1/N would be 1e-6 for 60,000 images)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--classifier-epochs", type=int, default=3)
    p.add_argument("--work", default="local/dp-utility")
    args = p.parse_args()
    work = Path(args.work)
    test_x, test_y = labelled(args.heldout)
    train_x, train_y = labelled(args.train)
    rows = []
    for eps in [float(e) for e in args.epsilons.split(",")]:
        run, samples, result = work / f"eps{eps:g}", work / f"eps{eps:g}-samples.npz", work / f"eps{eps:g}.json"
        if not result.is_file():
            if (run / "checkpoints").is_dir():  # stopped before its limit (a closed session): continue
                ganforge("train", "--resume", str(run), "--no-progress")
            else:
                ganforge("train", "--recipe", args.recipe, "--data", args.train, "--conditional",
                         "--dp-epsilon", str(eps), "--dp-delta", args.delta, "--epochs", str(args.epochs),
                         "--out", str(run),
                         "--no-progress", *[f"--set={o}" for o in args.overrides])
            ganforge("sample", str(run), "--n", str(len(train_x)), "--out", str(samples), "--no-progress")
            gen_x, gen_y = labelled(str(samples))
            accuracy = classification_accuracy_score(gen_x, gen_y, test_x, test_y, epochs=args.classifier_epochs)
            meta = read_network_meta(latest_checkpoint(run), "generator")
            train_seconds = last_record(run / "metrics.jsonl")["elapsed"]  # the whole run's, across resumes
            result.write_text(json.dumps({"epsilon_budget": eps, "accuracy": accuracy,
                                          "train_seconds": train_seconds, "threads": torch.get_num_threads(),
                                          "privacy": meta["privacy"], "step": meta["step"]}) + "\n")
        rows.append(json.loads(result.read_text()))
    ceiling = classification_accuracy_score(train_x, train_y, test_x, test_y, epochs=args.classifier_epochs)

    print(f"\n{Path(args.train).name} -> {Path(args.heldout).name}, recipe {args.recipe}, {args.epochs:g} epochs, "
          f"on {cpu_name()}; classifier: domain CNN, {args.classifier_epochs} epochs")
    print(f"{'epsilon':>8} {'spent':>7} {'delta':>7} {'noise':>7} {'D steps':>8} {'G steps':>8} {'train min':>9} "
          f"{'accuracy':>9}")
    for r in rows:
        q = r["privacy"]
        print(f"{r['epsilon_budget']:>8g} {q['epsilon']:>7.3f} {q['delta']:>7.0e} {q['noise_multiplier']:>7.3f} "
              f"{q['d_steps']:>8} {r['step']:>8} {r['train_seconds'] / 60:>9.1f} {r['accuracy']:>9.3f}")
    print(f"{'real':>8} {'':>7} {'':>7} {'':>7} {'':>8} {'':>8} {'':>9} {ceiling:>9.3f}")


if __name__ == "__main__":
    main()
