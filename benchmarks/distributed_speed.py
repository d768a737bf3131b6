"""Training throughput with 1 and 2 (or more) processes under torchrun, side by side.

Each configuration trains the same run for the same number of steps with the same per-process
batch, launched as ``torchrun --nproc-per-node N -m ganforge train``; the table reports the images
per second (all processes together) from the run's log, after the first log interval, and the
ratio against one process. On a CPU each process gets cores / N threads.

    python benchmarks/distributed_speed.py --procs 1,2 --steps 200
    python benchmarks/distributed_speed.py --procs 1,2 --device cuda    # on a machine with 2 GPUs
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def run(procs: int, steps: int, batch: int, device: str, data: str, threads: int) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"ganforge-ddp{procs}-"))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", f"--nproc-per-node={procs}", "-m", "ganforge", "train",
           "--data", data, "--out", str(out / "run"), "--max-steps", str(steps), "--batch-size", str(batch),
           "--device", device, "--no-progress", "--sample-every", "0", "--set", "train.log_every=25"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_sec"] for r in records if "images_per_sec" in r][1:]  # skip the warm-up interval
    shutil.rmtree(out, ignore_errors=True)
    return sum(rates) / len(rates)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", default="1,2")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default="builtin:shapes")
    args = p.parse_args()
    from ganforge.training.runtime import cpu_name

    counts = [int(n) for n in args.procs.split(",")]
    cores = os.cpu_count() or 1
    print(f"CPU: {cpu_name()} ({cores} cores); device {args.device}; {args.steps} steps, batch {args.batch_size} "
          f"per process, default recipe")
    print(f"{'processes':>9}  {'img/s':>8}  {'vs 1':>6}")
    base = None
    for n in counts:
        rate = run(n, args.steps, args.batch_size, args.device, args.data, max(1, cores // n))
        base = base or rate
        print(f"{n:>9}  {rate:>8.0f}  {rate / base:>5.2f}x")


if __name__ == "__main__":
    main()
