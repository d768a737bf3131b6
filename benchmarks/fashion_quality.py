"""Score sample sets against held-out Fashion-MNIST with the domain feature network.

For each samples file (uint8 .npz with ``images``), prints the Fréchet distance in the domain
network's feature space (fd_domain) against the held-out real images, overall and per class
(samples are assigned to the class the network predicts), and the class histogram. A
random 10,000-image slice of the training set is scored alongside as the "real data" reference.

    python benchmarks/fashion_quality.py local/fmnist-train.npz local/fmnist-test.npz a.npz b.npz
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ganforge.metrics.domain import extract, load_or_train
from ganforge.metrics.frechet import GaussianStats, frechet_distance


def load(path: str) -> tuple[torch.Tensor, np.ndarray | None]:
    d = np.load(path)
    x = d["images"]
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x)), (d["labels"] if "labels" in d else None)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train")
    p.add_argument("heldout")
    p.add_argument("samples", nargs="+")
    args = p.parse_args()
    train_x, train_y = load(args.train)
    net, _ = load_or_train(train_x, torch.from_numpy(train_y.astype(np.int64)))
    test_x, test_y = load(args.heldout)
    test_f, test_p = extract(net, test_x)
    acc = (test_p.argmax(1).numpy() == test_y).mean()
    print(f"domain classifier accuracy on held-out: {acc:.4f}")
    classes = test_p.shape[1]
    ref = {c: GaussianStats.of(test_f[test_y == c].numpy()) for c in range(classes)}
    ref_all = GaussianStats.of(test_f.numpy())

    sets = {"real train slice": train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:10000]]}
    sets.update({path: load(path)[0] for path in args.samples})
    rows = []
    for name, x in sets.items():
        f, prob = extract(net, x)
        pred = prob.argmax(1).numpy()
        per_class = []
        for c in range(classes):
            sel = f[pred == c].numpy()
            per_class.append(frechet_distance(GaussianStats.of(sel), ref[c]) if len(sel) > 10 else float("inf"))
        hist = np.bincount(pred, minlength=classes) / len(pred)
        rows.append((name, frechet_distance(GaussianStats.of(f.numpy()), ref_all), per_class, hist))
    for name, fd, per_class, hist in rows:
        print(f"\n{name}\n  fd_domain {fd:.3f}   worst class {max(per_class):.3f}")
        print("  per-class fd: " + " ".join(f"{v:.2f}" for v in per_class))
        print("  class share:  " + " ".join(f"{v:.3f}" for v in hist))


if __name__ == "__main__":
    main()
