"""Class-conditional vs unconditional on Fashion-MNIST: quality, per-class quality, coverage and CAS.

Trains nothing: give it two finished runs of the same recipe and time budget, one with
``--conditional``. Each run's generator draws ``--n`` samples (balanced classes for the conditional
one) scored against the held-out images with the domain network trained on the training images:
fd_domain, per-class FD (conditional: by the class asked for; unconditional: by the class the
domain classifier predicts), classes covered, and the Classification Accuracy Score (a classifier
trained on the generated images and their labels, tested on the held-out images). The same CAS
classifier trained on as many real training images gives the ceiling.

    ganforge train --data local/fmnist-train.npz --max-time 10m --out local/runs/fm-cond --conditional
    ganforge train --data local/fmnist-train.npz --max-time 10m --out local/runs/fm-uncond
    python benchmarks/conditional_fashion.py local/runs/fm-cond local/runs/fm-uncond \\
        local/fmnist-train.npz local/fmnist-test.npz
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ganforge.metrics.cas import classification_accuracy_score
from ganforge.metrics.domain import extract, load_or_train
from ganforge.metrics.frechet import GaussianStats, frechet_distance
from ganforge.metrics.run_eval import evaluate_run
from ganforge.sampling import load_generator
from ganforge.training.runtime import cpu_name


def load(path: str) -> tuple[torch.Tensor, np.ndarray]:
    d = np.load(path)
    return torch.from_numpy(np.ascontiguousarray(d["images"][:, None])), d["labels"].astype(np.int64)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("conditional")
    p.add_argument("unconditional")
    p.add_argument("train")
    p.add_argument("heldout")
    p.add_argument("--n", type=int, default=10000)
    args = p.parse_args()

    train_x, train_y = load(args.train)
    test_x, test_y = load(args.heldout)
    net, _ = load_or_train(train_x, torch.from_numpy(train_y))
    test_f = extract(net, test_x)[0].numpy()
    classes = int(test_y.max()) + 1
    ref = [GaussianStats.of(test_f[test_y == c]) for c in range(classes)]

    rows = []
    for name, run in (("conditional", args.conditional), ("unconditional", args.unconditional)):
        res = evaluate_run(run, real=args.heldout, n=args.n, metrics="fd,modes", progress=False)
        gen = load_generator(run)
        if gen.num_classes:
            per_class, cas = res["fd_domain_per_class"], res["cas"]
        else:  # assign each sample to the class the domain classifier sees in it
            fake = gen.sample(args.n, seed=0)
            f, probs = extract(net, fake)
            pred = probs.argmax(1).numpy()
            per_class = [frechet_distance(GaussianStats.of(f.numpy()[pred == c]), ref[c]) if (pred == c).sum() > 2
                         else float("inf") for c in range(classes)]
            cas = None
        rows.append((name, gen.step, res["fd_domain"], per_class, res["classes_covered"], cas))

    keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[: args.n]
    ceiling = classification_accuracy_score(train_x[keep], train_y[keep.numpy()], test_x, test_y)

    print(f"CPU: {cpu_name()}; {args.n} samples per run vs {len(test_x)} held-out images (domain features)")
    print(f"{'run':14s} {'G steps':>7s} {'fd_domain':>9s} {'class FD mean':>13s} {'worst':>6s} {'classes':>7s} {'CAS':>6s}")
    for name, step, fd, per_class, covered, cas in rows:
        print(f"{name:14s} {step:7d} {fd:9.3f} {np.mean(per_class):13.3f} {max(per_class):6.2f} "
              f"{covered:>4d}/{classes} {'-' if cas is None else f'{cas:.3f}':>6s}")
    print(f"CAS ceiling (the same classifier on {args.n} real training images): {ceiling:.3f}")
    for name, _, _, per_class, _, _ in rows:
        print(f"per-class FD {name:14s}: " + " ".join(f"{v:.2f}" for v in per_class))


if __name__ == "__main__":
    main()
