"""Training-step throughput: ganforge's step against the classic DCGAN training loop.

The baseline is written the way the classic DCGAN example writes it: eager float32,
Sigmoid + BCELoss, separate backward passes for the real and fake terms, images
normalised per sample by a DataLoader, and ``.item()`` on five numbers every step (each one
a host synchronisation). Both sides train the same ganforge DCGAN networks at batch 128.
Measurements alternate between the variants over several rounds and report the median,
because machines are noisy. Nothing here is asserted; it prints a table and the ratios.

    python benchmarks/train_speed.py                 # 32 and 64 px, CPU
    python benchmarks/train_speed.py --device cuda   # on a GPU
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from ganforge.config import Config, set_value, validate
from ganforge.data import Geometry, ImageDataset
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.training.loop import Trainer


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


def ganforge_loop(images, resolution, channels, device, precision, steps, warmup, batch=128):
    """Images/s of ganforge's training step (Trainer.train_step, log every 50 steps as by default)."""
    cfg = Config()
    for key, value in {"train.batch_size": batch, "train.device": device, "train.precision": precision,
                       "train.progress": False, "train.max_steps": 1}.items():
        set_value(cfg, key, value)
    geometry = Geometry(resolution=resolution, height=resolution, width=resolution, fit="pad", channels=channels)
    data = ImageDataset(images=images, labels=None, class_names=[], geometry=geometry, source="synthetic", skipped=[])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(validate(cfg), tmp, dataset=data)
    sums = torch.zeros(4, device=trainer.device)
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        stats = trainer.train_step()
        sums += torch.stack([stats[k].float() for k in ("loss_d", "loss_g", "d_real", "d_fake")])
        if (i + 1) % 50 == 0:
            sums.tolist()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


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
    device_name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device_name}; torch {torch.__version__}; batch 128; {steps} timed steps x {args.rounds} rounds")
    header = f"{'px':>4} {'classic fp32':>13} {'ganforge fp32':>14} {'ganforge bf16':>14} {'fp32/classic':>13} {'bf16/classic':>13}"
    print(header)
    for res in map(int, args.resolutions.split(",")):
        images = synthetic_images(2048, args.channels, res)
        runs = {"classic": [], "fp32": [], "bf16": []}
        for _ in range(args.rounds):  # interleaved so that drift hits every variant alike
            runs["classic"].append(classic_loop(images, res, args.channels, args.device, steps, warmup))
            for prec in ("fp32", "bf16"):
                runs[prec].append(ganforge_loop(images, res, args.channels, args.device, prec, steps, warmup))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{res:>4} {med['classic']:>13.0f} {med['fp32']:>14.0f} {med['bf16']:>14.0f} "
              f"{med['fp32'] / med['classic']:>12.2f}x {med['bf16'] / med['classic']:>12.2f}x", flush=True)
    print("images/s, median over rounds; ratios > 1 mean ganforge is faster")


if __name__ == "__main__":
    main()
