"""Does the membership-inference audit see a leak where there is one, and none under DP?

A GAN trained long on a small subset (default 1,000 training images) memorises it; the same set-up with
differential privacy should not. Both runs use the ``dp`` recipe's networks and steps (the non-private one
with DP switched off), then ``ganforge audit`` attacks each with the subset as members and as many
held-out images as non-members.

    python benchmarks/dp_audit.py local/fmnist-train.npz local/fmnist-test.npz --subset 1000 --epochs 300
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ganforge.training.runtime import cpu_name


def ganforge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)


def subset(source: str, n: int, out: Path, seed: int) -> Path:
    """The first n images (after a seeded shuffle) of an .npz, with their labels."""
    if not out.is_file():
        with np.load(source) as f:
            images, labels = f["images"], f["labels"]
        pick = np.random.default_rng(seed).permutation(len(images))[:n]
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, images=images[pick], labels=labels[pick])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train")
    p.add_argument("heldout")
    p.add_argument("--subset", type=int, default=1000)
    p.add_argument("--epochs", type=float, default=300)
    p.add_argument("--epsilon", type=float, default=10)
    p.add_argument("--recipe", default="dp")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="options for both runs on top of the recipe")
    p.add_argument("--work", default="local/dp-audit")
    p.add_argument("--runs", default="non-private,dp",
                   help="which runs to train and audit (two invocations with one run each can go side by side)")
    args = p.parse_args()
    work = Path(args.work)
    members = subset(args.train, args.subset, work / "members.npz", 0)
    non_members = subset(args.heldout, args.subset, work / "non-members.npz", 1)
    runs = {"non-private": ("non-private", ["--set", "dp.epsilon=null"]),
            "dp": (f"DP eps={args.epsilon:g}", ["--dp-epsilon", str(args.epsilon)])}
    rows = {}
    for name, dp in (runs[key] for key in args.runs.split(",")):
        run = work / name.replace(" ", "-").replace("=", "")
        if not (run / "audit" / "audit.json").is_file():
            if not (run / "checkpoints").is_dir():
                ganforge("train", "--recipe", args.recipe, "--data", str(members), "--epochs", str(args.epochs),
                         "--out", str(run), "--no-progress", *dp, *[f"--set={o}" for o in args.overrides])
            else:  # a run stopped before its limit (Ctrl-C, a closed session) continues; a finished one stops at once
                ganforge("train", "--resume", str(run), "--epochs", str(args.epochs), "--no-progress")
            ganforge("audit", str(run), "--members", str(members), "--non-members", str(non_members),
                     "--n", str(args.subset), "--no-progress")
        rows[name] = json.loads((run / "audit" / "audit.json").read_text())

    print(f"\nmembership inference, {args.subset} members vs {args.subset} held-out, recipe {args.recipe}, "
          f"{args.epochs:g} epochs, on {cpu_name()}")
    print(f"{'run':<16} {'epsilon':>8} {'attack':<24} {'AUC':>6} {'95% interval':>16} {'TPR@1%FPR':>10}")
    for name, report in rows.items():
        eps = f"{report['privacy']['epsilon']:.2f}" if report.get("privacy") else "-"
        for a in report["attacks"]:
            low, high = a["auc_ci95"]
            print(f"{name:<16} {eps:>8} {a['attack']:<24} {a['auc']:>6.3f} [{low:.3f}, {high:.3f}] "
                  f"{a['tpr_at_1pct_fpr']:>10.3f}")


if __name__ == "__main__":
    main()
