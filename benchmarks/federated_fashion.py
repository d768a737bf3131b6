"""Federated against centralised training at the same number of images seen, by how the data is split.

Each federation (``ganforge federate simulate``: a SuperLink and one SuperNode per site on this
machine) takes ``rounds`` rounds of ``local_steps`` steps on every site, at the recipe's batch size or at
``--site-batch``; the centralised run of the recipe takes as many G steps as make D see the same number
of real images (``rounds x local_steps x sites x site_batch / recipe batch``). With ``--site-batch`` =
recipe batch / sites, every site takes as many steps as the centralised run, and one step of the whole
federation reads one recipe batch, spread over the sites. Every run is then scored with ``ganforge
eval`` (10,000 samples against the held-out images, domain features trained on the training images) and
the table gives fd_domain and its ratio to the centralised run's. Finished runs and scores are reused
when the script is started again.

    python benchmarks/federated_fashion.py fm-train.npz fm-test.npz --sites 4 --rounds 10 --local-steps 50 \\
        --splits dirichlet:0.5,iid,classes --server-lr 2

``--server-lr``, ``--final-server-lr`` and ``--server-momentum`` go to every federation (FedAvgM, see
ganforge.federated.server_step); their runs are kept apart from FedAvg's (``fed-iid-lr2``, ``fed-iid-lr2-f1x2``).
``--one-site-baseline`` adds a centralised run at the site batch for as many steps as one site takes
(all the training images, a quarter of the budget with 4 sites): what one site's share of the images buys
without the others, the floor a federation should beat. ``--seed`` reseeds every run (the split,
initial weights, noise), the centralised ones too (``central-s1``), so that each ratio compares runs of one
seed and a second seed shows how far both move.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ganforge.training.runtime import cpu_name


def ganforge(*args: str) -> float:
    """Run a ganforge command; returns its wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ganforge", *args], check=True)
    return time.perf_counter() - start


def train_central(args, out: Path, steps: int, batch_size: int | None = None) -> float:
    """Train the recipe centrally (once: a finished run's seconds are kept beside it); returns its seconds."""
    timing = out.parent / f"{out.name}.seconds"
    if not timing.is_file():
        size = ["--batch-size", str(batch_size)] if batch_size else []
        seconds = ganforge("train", "--data", args.train, "--recipe", args.recipe, "--max-steps", str(steps),
                           *size, "--seed", str(args.seed), "--precision", args.precision, "--out", str(out),
                           "--no-progress")
        timing.write_text(f"{seconds}\n")
    return float(timing.read_text())


def recipe_batch(recipe: str) -> int:
    """The batch size the recipe trains with."""
    from ganforge.configure import build_config

    return build_config(recipe, None, []).train.batch_size


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train", help="labelled training images (.npz or any ganforge source)")
    p.add_argument("heldout", help="held-out real images")
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--local-steps", type=int, default=50)
    p.add_argument("--splits", default="dirichlet:0.5,iid,classes")
    p.add_argument("--recipe", default="stable")
    p.add_argument("--server-lr", type=float, default=1.0, help="passed to federate simulate (1: FedAvg)")
    p.add_argument("--final-server-lr", type=float, help="passed to federate simulate (the last rounds' rate)")
    p.add_argument("--final-rounds", type=int, default=1, help="passed to federate simulate with --final-server-lr")
    p.add_argument("--server-momentum", type=float, default=0.0, help="passed to federate simulate")
    p.add_argument("--site-batch", type=int, help="each site's batch size (default: the recipe's); runs with one "
                   "are kept apart (fed-iid-b16)")
    p.add_argument("--one-site-baseline", action="store_true", help="also train centrally at the site batch for "
                   "one site's number of steps (central-b16)")
    p.add_argument("--site-lr", type=float, help="the sites' learning rate for both networks (default: the "
                   "recipe's); runs with one are kept apart (fed-iid-b16-slr0.0004)")
    p.add_argument("--seed", type=int, default=0, help="every run's seed; runs with another are kept apart "
                   "(central-s1, fed-iid-s1)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="every run's precision (fp32 to compare with runs on a CPU without native bfloat16)")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--work", default="local/federated-fashion")
    args = p.parse_args()
    work = Path(args.work)
    batch = recipe_batch(args.recipe)
    site_batch = args.site_batch or batch
    images = args.rounds * args.local_steps * args.sites * site_batch
    if images % batch:
        raise SystemExit(f"{images} images in all is not a whole number of the recipe's batches of {batch}")
    steps = images // batch
    runs: dict[str, tuple[Path, float | None]] = {}

    seeded = f"-s{args.seed}" if args.seed else ""
    central = work / f"central{seeded}"
    runs["centralised"] = (central, train_central(args, central, steps))
    if args.one_site_baseline:
        one_site = work / f"central-b{site_batch}{seeded}"
        local_steps = args.rounds * args.local_steps
        runs[f"centralised, {local_steps} x {site_batch}"] = (
            one_site, train_central(args, one_site, local_steps, site_batch))
    final_lr = args.final_server_lr
    tags = [(args.server_lr != 1, f"-lr{args.server_lr:g}"), (final_lr is not None, f"-f{final_lr or 0:g}"),
            (final_lr is not None and args.final_rounds != 1, f"x{args.final_rounds}"),
            (args.server_momentum, f"-m{args.server_momentum:g}"),
            (site_batch != batch, f"-b{site_batch}"), (args.site_lr, f"-slr{args.site_lr or 0:g}"),
            (args.seed, seeded)]
    server = "".join(tag for wanted, tag in tags if wanted)  # a run folder per setting: fed-iid-lr2-b16-s1
    for split in args.splits.split(","):
        run = work / f"fed-{split.replace(':', '')}{server}"
        timing = run.parent / f"{run.name}.seconds"  # (not with_suffix: "dirichlet0.5" has a dot)
        if not timing.is_file():
            resume = ["--resume", str(run)] if (run / "federation.json").is_file() else [
                "--out", str(run), "--data", args.train, "--sites", str(args.sites), "--split", split,
                "--rounds", str(args.rounds), "--local-steps", str(args.local_steps), "--recipe", args.recipe,
                "--seed", str(args.seed), "--set", f"train.precision={args.precision}",
                "--server-lr", str(args.server_lr),
                "--server-momentum", str(args.server_momentum), "--batch-size", str(site_batch),
                *(["--final-server-lr", str(final_lr), "--final-rounds", str(args.final_rounds)]
                  if final_lr is not None else []),
                *(["--lr", str(args.site_lr)] if args.site_lr else [])]
            seconds = ganforge("federate", "simulate", *resume)
            timing.write_text(f"{seconds}\n")
        runs[f"{args.sites} sites, {split}{server}"] = (run, float(timing.read_text()))

    results = {}
    for name, (run, seconds) in runs.items():
        scores = run.parent / f"{run.name}.json"
        if not scores.is_file():
            ganforge("eval", str(run), "--real", args.heldout, "--n", str(args.n), "--metrics", "fd,pr,modes",
                     "--extractor", "domain", "--json", str(scores), "--no-progress")
        results[name] = {**json.loads(scores.read_text()), "seconds": seconds}

    reference = results["centralised"]["fd_domain"]
    print(f"\n{Path(args.train).name}, recipe {args.recipe}, {images:,} real images for D: centralised {steps:,} "
          f"steps of {batch}, federated {args.rounds} rounds x {args.local_steps} local steps x {args.sites} sites "
          f"of {site_batch}, seed {args.seed}, on {cpu_name()}; "
          f"{args.n} samples vs {Path(args.heldout).name}, domain features")
    print(f"{'setup':<32} {'minutes':>8} {'fd_domain':>10} {'x central':>10} {'precision':>10} {'recall':>8} "
          f"{'classes':>8}")
    for name, r in results.items():
        print(f"{name:<32} {r['seconds'] / 60:>8.1f} {r['fd_domain']:>10.2f} {r['fd_domain'] / reference:>10.2f} "
              f"{r['precision_domain']:>10.3f} {r['recall_domain']:>8.3f} {r['classes_covered']:>5}/"
              f"{r['classes_total']}")


if __name__ == "__main__":
    main()
