"""Per architecture and resolution: parameters, FLOPs per image and training images per second.

For every family at the reference network sizes (recipes `sngan`, `stylegan2`, `r3gan`) and CPU-sized
(`sngan-small`, `stylegan2-small`, `r3gan-small`; dcgan: `stable` for both), the table lists G's and D's
parameters, the FLOPs of one forward pass per image (torch's FLOP counter: 2 per multiply-add, convolutions
and matrix products), and training throughput: whole ``TrainState.train_step`` calls of the recipe (its
losses, penalties on their intervals, D steps, average, schedule) at the given batch and the resolved
precision, timed after warm-up, in real images per second. Nothing is asserted.

    python benchmarks/architectures.py                              # 32 px, every family, small and reference
    python benchmarks/architectures.py --resolutions 32,64 --sizes small --steps 4
    python benchmarks/architectures.py --device cuda --batch 64      # on a GPU
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ganforge.configure import build_config
from ganforge.models import build_discriminator, build_generator, config_from_section
from ganforge.models.layers import count_parameters
from ganforge.training.runtime import cpu_name, resolve_precision
from ganforge.training.state import TrainState

# family -> (recipe at the CPU size, recipe at the reference size); the default DCGAN is already CPU-sized
FAMILIES = {"dcgan": ("stable", "stable"), "resnet": ("sngan-small", "sngan"),
            "stylegan2": ("stylegan2-small", "stylegan2"), "r3gan": ("r3gan-small", "r3gan")}


def forward_flops(module: torch.nn.Module, *inputs) -> int:
    """FLOPs of one forward pass (no gradients) on ``inputs``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops()


def measure(arch: str, size: str, resolution: int, batch: int, steps: int, device: torch.device,
            precision_name: str) -> dict:
    recipe = FAMILIES[arch][0 if size == "small" else 1]
    cfg = build_config(recipe, None, [("train.batch_size", batch)])
    model_cfg = config_from_section(cfg.model, resolution=resolution, channels=3, num_classes=0)
    G, D = build_generator(arch, model_cfg).eval(), build_discriminator(arch, model_cfg).eval()
    z = torch.randn(1, model_cfg.z_dim)
    row = {"g_params": count_parameters(G), "d_params": count_parameters(D),
           "g_flops": forward_flops(G, z), "d_flops": forward_flops(D, G(z).detach())}
    precision = resolve_precision(precision_name, device)
    state = TrainState.from_config(cfg, model_cfg, device, precision)
    real = [(torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1, None)
            for _ in range(cfg.train.d_steps)]
    interval = max(cfg.reg.r_interval, cfg.reg.pl_interval if cfg.reg.pl_weight else 1)
    # small sizes: one whole cycle of the lazy penalties as warm-up, then whole cycles timed; reference sizes
    # (minutes per cycle on a CPU): one warm-up step and ``steps`` timed steps (lazy penalties may fall outside)
    whole_cycles = size == "small"
    warmup = interval if whole_cycles else 1
    for _ in range(warmup):
        state.train_step(real)
    timed = max(steps, interval) if whole_cycles else steps
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(timed):
        stats = state.train_step(real)
    float(stats["loss_d"])  # wait for the device
    seconds = time.perf_counter() - start
    row["img_s"] = timed * batch * cfg.train.d_steps / seconds
    row["precision"] = precision.name
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--sizes", default="small,reference")
    p.add_argument("--resolutions", default="32")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="timed G steps, small sizes (at least one lazy-penalty cycle)")
    p.add_argument("--reference-steps", type=int, default=2, help="timed G steps at the reference sizes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"# {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'arch':<10} {'size':<10} {'px':>4} {'G params':>12} {'D params':>12} {'G GFLOP/img':>12} "
          f"{'D GFLOP/img':>12} {'train img/s':>12} precision")
    for arch in args.families.split(","):
        for size in args.sizes.split(","):
            for resolution in map(int, args.resolutions.split(",")):
                steps = args.steps if size == "small" else args.reference_steps
                r = measure(arch, size, resolution, args.batch, steps, device, args.precision)
                print(f"{arch:<10} {size:<10} {resolution:>4} {r['g_params']:>12,} {r['d_params']:>12,} "
                      f"{r['g_flops'] / 1e9:>12.3f} {r['d_flops'] / 1e9:>12.3f} {r['img_s']:>12.1f} "
                      f"{r['precision']}", flush=True)


if __name__ == "__main__":
    main()
