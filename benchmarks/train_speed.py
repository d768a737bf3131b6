"""Training-step throughput: ganforge's step against the classic DCGAN training loop.

The baseline is written the way the classic DCGAN example writes it: eager float32,
Sigmoid + BCELoss, separate backward passes for the real and fake terms, images
normalised per sample by a DataLoader, and ``.item()`` on five numbers every step (each one
a host synchronisation). Variants, all on the same ganforge DCGAN networks:

  classic         the classic loop above, batch 128
  ganforge fp32   Trainer.train_step with the `classic` recipe (the Config defaults), batch 128, float32
  ganforge bf16   the same in bfloat16 autocast
  default         what `ganforge train` runs: the default recipe (`stable`: batch 64, R1 every 4 D steps,
                  minibatch-stddev in D, averaged G) at --precision auto, resolved by ganforge.configure.build_config;
                  whole Trainer steps, so R1 (timed over whole R1 cycles) and the EMA update are included

Throughput is images/s (real images consumed), so batch sizes compare fairly. Every variant runs
under its own torch backend settings: the Trainer switches TF32 and cudnn.benchmark on for CUDA,
and those process-wide settings are restored after each variant, so the classic loop always runs
under torch's defaults. Measurements alternate between the variants over several rounds and
report the median, because machines are noisy; the ratios are against the classic loop measured
in the same run. The CPU (and GPU) is printed above the table: numbers only mean something with
the machine named. Nothing here is asserted; it prints a table and the ratios.

    python benchmarks/train_speed.py                         # 32 and 64 px, CPU
    python benchmarks/train_speed.py --device cuda           # on a GPU
    python benchmarks/train_speed.py --rounds 1 --steps 5 --resolutions 32   # smoke check
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
from torch import nn

from ganforge.configure import build_config
from ganforge.config import Config, set_value
from ganforge.validation import validate
from ganforge.data import Geometry, ImageDataset
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.recipes import DEFAULT_RECIPE
from ganforge.training.loop import Trainer
from ganforge.training.runtime import backend_settings, cpu_name, native_bf16_flags

STAT_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")  # what the training loop sums between log lines


def synthetic_images(n: int, channels: int, resolution: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, resolution, resolution), dtype=torch.uint8)


class NormalisedImages(torch.utils.data.Dataset):
    """Per-sample uint8 -> [-1, 1] conversion, as a ToTensor + Normalize transform does."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float().div(255).sub(0.5).div(0.5), 0


def classic_loop(images, resolution, channels, device, steps, warmup, batch=128):
    """Images/s of the classic loop (the baseline)."""
    torch.manual_seed(0)
    cfg = model_config("dcgan", resolution=resolution, channels=channels)
    netG = build_generator("dcgan", cfg).to(device)
    netD = nn.Sequential(build_discriminator("dcgan", cfg), nn.Sigmoid()).to(device)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(NormalisedImages(images), batch_size=batch, shuffle=True, drop_last=True)
    it = iter(loader)
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        try:
            data, _ = next(it)
        except StopIteration:
            it = iter(loader)
            data, _ = next(it)
        real = data.to(device)
        b = real.size(0)
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b,), 1.0, device=device)
        output = netD(real).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(b, cfg.z_dim, device=device)
        fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optG.step()
        _ = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)  # the per-step logging values
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def classic_recipe_config(device, precision, batch=128) -> Config:
    """The `classic` recipe (the Config defaults) at a fixed batch and precision."""
    cfg = Config()
    for key, value in {"train.batch_size": batch, "train.device": device, "train.precision": precision,
                       "train.progress": False, "train.max_steps": 1}.items():
        set_value(cfg, key, value)
    return validate(cfg)


def default_recipe_config(device) -> Config:
    """What `ganforge train --device DEVICE` trains with: the default recipe, precision auto."""
    return build_config(None, None, [("train.device", device), ("train.progress", False), ("train.max_steps", 1)])


def make_trainer(cfg, images, resolution, channels) -> Trainer:
    geometry = Geometry(resolution=resolution, height=resolution, width=resolution, fit="pad", channels=channels)
    data = ImageDataset(images=images, labels=None, class_names=[], geometry=geometry, source="synthetic", skipped=[])
    with tempfile.TemporaryDirectory() as tmp:
        return Trainer(cfg, tmp, dataset=data)


def trainer_loop(cfg, images, resolution, channels, steps, warmup):
    """Images/s of whole Trainer steps (Trainer.train_step; stats summed and read every log_every steps
    as the training loop does), and the precision the Trainer chose."""
    trainer = make_trainer(cfg, images, resolution, channels)
    device = trainer.device
    t = cfg.train
    steps, warmup = whole_cycles(cfg, steps), whole_cycles(cfg, warmup)
    sums = torch.zeros(len(STAT_KEYS), device=device)
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        stats = trainer.train_step()
        sums += torch.stack([stats[k].float() for k in STAT_KEYS])
        if (i + 1) % t.log_every == 0:
            sums.tolist()
    _sync(device)
    images_per_step = t.batch_size * t.d_steps
    return images_per_step * steps / (time.perf_counter() - start), trainer.precision.name


def whole_cycles(cfg, steps):
    """``steps`` rounded up to whole cycles of lazy regularisation (R1/R2 every r_interval-th D update),
    so that the timed steps hold their fair share of penalty steps."""
    reg, d_steps = cfg.reg, cfg.train.d_steps
    if not (reg.r1_gamma > 0 or reg.r2_gamma > 0):
        return steps
    cycle = math.lcm(reg.r_interval, d_steps) // d_steps
    return -(-steps // cycle) * cycle


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def machine_description(device: str) -> str:
    flags = native_bf16_flags()
    cpu = (f"CPU: {cpu_name()} ({torch.get_num_threads()} threads; native bf16: "
           f"{', '.join(flags) if flags else 'no'})")
    if device.startswith("cuda"):
        cpu += f"\nGPU: {torch.cuda.get_device_name(torch.device(device))}"
    return cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="timed steps per measurement (default: 10 on CPU, 100 on GPU)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    steps = args.steps or (100 if gpu else 10)
    warmup = 10 if gpu else 2
    default_cfg = default_recipe_config(args.device)
    print(machine_description(args.device))
    default_steps = whole_cycles(default_cfg, steps)
    print(f"torch {torch.__version__}; {steps} timed steps x {args.rounds} rounds"
          + (f" ({default_steps} for the default recipe: whole R1 cycles)" if default_steps != steps else "")
          + f"; classic and ganforge fp32/bf16 at batch 128, default at batch {default_cfg.train.batch_size}")
    header = (f"{'px':>4} {'classic fp32':>13} {'ganforge fp32':>14} {'ganforge bf16':>14} {'default':>13} "
              f"{'fp32/classic':>13} {'bf16/classic':>13} {'default/classic':>16}")
    print(header, flush=True)
    default_precisions = set()
    for res in map(int, args.resolutions.split(",")):
        images = synthetic_images(2048, args.channels, res)
        runs = {"classic": [], "fp32": [], "bf16": [], "default": []}
        for _ in range(args.rounds):  # interleaved so that drift hits every variant alike
            # each variant under its own backend settings: what a Trainer sets (TF32, cudnn.benchmark
            # on CUDA) is undone before the next one, so the classic loop always runs under the defaults
            with backend_settings():
                runs["classic"].append(classic_loop(images, res, args.channels, args.device, steps, warmup))
            for prec in ("fp32", "bf16"):
                with backend_settings():
                    cfg = classic_recipe_config(args.device, prec)
                    runs[prec].append(trainer_loop(cfg, images, res, args.channels, steps, warmup)[0])
            with backend_settings():
                ips, precision = trainer_loop(default_cfg, images, res, args.channels, steps, warmup)
                runs["default"].append(ips)
                default_precisions.add(precision)
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{res:>4} {med['classic']:>13.0f} {med['fp32']:>14.0f} {med['bf16']:>14.0f} {med['default']:>13.0f} "
              f"{med['fp32'] / med['classic']:>12.2f}x {med['bf16'] / med['classic']:>12.2f}x "
              f"{med['default'] / med['classic']:>15.2f}x", flush=True)
    print(f"images/s, median over rounds; ratios > 1 mean ganforge is faster; default = recipe "
          f"{DEFAULT_RECIPE!r}, precision auto -> {'/'.join(sorted(default_precisions))}")


if __name__ == "__main__":
    main()
