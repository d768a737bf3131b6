"""Plain aggregation against SecAgg+ and CKKS: bytes, seconds and how far each aggregate is from the plain one.

The same federation (recipe, seed, sites, split) runs ``--rounds`` rounds three times through Flower
on this machine: in the clear, with SecAgg+, and with CKKS-encrypted updates. Sites train
deterministically, so after the first round the three global models differ only by what the
aggregation itself does (SecAgg+'s clipping and quantisation, CKKS's rounding); the table gives the
largest difference from the plain aggregate after round 1, the payload bytes each site sent and
received per round (counted at the server: arrays and byte fields, SecAgg+'s key exchange included)
and the seconds per round.

    python benchmarks/federated_aggregation.py fm-train.npz --sites 2 --local-steps 5 --recipe stable
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ganforge.training.runtime import cpu_name


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="labelled training images to split over the sites")
    p.add_argument("--sites", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--local-steps", type=int, default=5)
    p.add_argument("--recipe", default="stable")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", default="local/federated-aggregation")
    args = p.parse_args()
    from ganforge.federated import he
    from ganforge.federated.decrypt import decrypt_run
    from ganforge.federated.server import GlobalRun

    work = Path(args.work)
    modes = {"plain": [], "SecAgg+": ["--secure-aggregation"], "CKKS": ["--he", "ckks"]}
    runs = {}
    for name, flags in modes.items():
        run = work / name.lower().replace("+", "plus")
        if not (run / "metrics.jsonl").is_file():
            subprocess.run([sys.executable, "-m", "ganforge", "federate", "simulate", "--data", args.data,
                            "--sites", str(args.sites), "--split", "iid", "--rounds", str(args.rounds),
                            "--local-steps", str(args.local_steps), "--recipe", args.recipe, "--seed", "0",
                            "--min-sites", str(args.sites), "--out", str(run), *flags,
                            *[x for o in args.overrides for x in ("--set", o)]], check=True)
        runs[name] = run

    def round_one(run: Path) -> list[np.ndarray]:
        """The global weights after round 1 (the run's newest checkpoint when it ran one round)."""
        if (run / "encrypted").is_dir():
            plain = run.with_name(run.name + "-decrypted")
            if not plain.is_dir():
                decrypt_run(run, run / "keys" / he.SITE_KEY, plain)
            run = plain
        return GlobalRun.resume(run).weights()

    reference = round_one(runs["plain"])
    values = sum(a.size for a in reference)
    print(f"\n{Path(args.data).name}, recipe {args.recipe}: {values:,} exchanged values (G, D, G's average), "
          f"{args.sites} sites, {args.local_steps} local steps per round, on {cpu_name()}")
    print(f"{'aggregation':<12} {'MB up/site':>11} {'MB down/site':>13} {'B per value up':>15} {'s/round':>8} "
          f"{'max |diff| vs plain':>20}")
    for name, run in runs.items():
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        up = np.mean([r["bytes_up"] / r["sites"] for r in records])
        down = np.mean([r["bytes_down"] / r["sites"] for r in records])
        seconds = np.mean([r["seconds"] for r in records])
        diff = max(float(np.abs(a - b).max()) for a, b in zip(round_one(run), reference)) if args.rounds == 1 else None
        shown = "-" if diff is None else f"{diff:.2e}"
        print(f"{name:<12} {up / 1e6:>11.2f} {down / 1e6:>13.2f} {up / values:>15.1f} {seconds:>8.1f} {shown:>20}")


if __name__ == "__main__":
    main()
