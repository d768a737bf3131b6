"""Training-step throughput: ganforge's step against the classic DCGAN training loop.

The baseline is written the way the classic DCGAN example writes it: eager float32,
Sigmoid + BCELoss, separate backward passes for the real and fake terms, images
normalised per sample by a DataLoader, and ``.item()`` on five numbers every step (each one
a host synchronisation). Variants, all on the same ganforge DCGAN networks:

  classic         the classic loop above, batch 64 (--batch)
  fp32            Trainer.train_step with the `classic` recipe (the Config defaults), same batch, float32
  bf16            the same in bfloat16 autocast
  default         what `ganforge train` runs: the default recipe (`stable`: batch 64, R1 every 4 D steps,
                  minibatch-stddev in D, averaged G) at --precision auto, resolved by ganforge.configure.build_config;
                  whole Trainer steps, so R1 (timed over whole R1 cycles) and the EMA update are included
  channels_last   default with train.channels_last (images, G and D in channels-last memory format)
  compiled        default with train.compile (torch.compile of the regular passes; R1 passes stay eager);
                  not run unless named in --variants: its compilation takes about 35 s per run on a 2-core CPU

Below each resolution's row: the matrix and convolution FLOPs per training image of the classic and
the default step (torch's FLOP counter, R1's double backward included) and the share of a large matrix
product's FLOP/s (measured in the same run, fp32 and bf16) that each step reached; the default recipe
at other batch sizes (--batch-sizes, with peak memory on a GPU); and sampling speed (images/s of the
averaged G at a batch of 64 on a CPU, 256 on a GPU, and the median latency of one image).

Throughput is images/s (real images consumed), so batch sizes compare fairly. Every variant runs
under its own torch backend settings: the Trainer switches TF32 and cudnn.benchmark on for CUDA,
and those process-wide settings are restored after each variant, so the classic loop always runs
under torch's defaults. Measurements alternate between the variants over several rounds and
report the median, because machines are noisy; the ratios are against the classic loop measured
in the same run. The CPU (and GPU) is printed above the table: numbers only mean something with
the machine named. Nothing here is asserted; it prints a table and the ratios.

    python benchmarks/train_speed.py                         # 32 and 64 px, CPU
    python benchmarks/train_speed.py --device cuda --variants classic,fp32,bf16,default,channels_last,compiled \\
        --batch-sizes 64,256,1024,4096                       # on a GPU (benchmarks/gpu_check.sh)
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
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ganforge.configure import build_config
from ganforge.config import Config, set_value
from ganforge.validation import validate
from ganforge.data import Geometry, ImageDataset
from ganforge.models import build_discriminator, build_generator, model_config
from ganforge.recipes import DEFAULT_RECIPE
from ganforge.training.loop import Trainer
from ganforge.training.runtime import backend_settings, cpu_has_native_bf16, cpu_name, native_bf16_flags

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


class ClassicLoop:
    """The classic loop (the baseline), one step at a time."""

    def __init__(self, images, resolution, channels, device, batch, channels_last=False):
        torch.manual_seed(0)
        self.cfg = cfg = model_config("dcgan", resolution=resolution, channels=channels)
        self.device, self.batch = device, batch
        self.netG = build_generator("dcgan", cfg).to(device)
        self.netD = nn.Sequential(build_discriminator("dcgan", cfg), nn.Sigmoid()).to(device)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = torch.utils.data.DataLoader(NormalisedImages(images), batch_size=batch, shuffle=True,
                                                  drop_last=True)
        self.it = iter(self.loader)

    def step(self):
        try:
            data, _ = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            data, _ = next(self.it)
        netD, netG, criterion, device = self.netD, self.netG, self.criterion, self.device
        real = data.to(device)
        b = real.size(0)
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b,), 1.0, device=device)
        output = netD(real).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(b, self.cfg.z_dim, device=device)
        fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optG.step()
        _ = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)  # the per-step logging values


def classic_loop(images, resolution, channels, device, steps, warmup, batch):
    """Images/s of the classic loop (the baseline)."""
    loop = ClassicLoop(images, resolution, channels, device, batch)
    for _ in range(warmup):
        loop.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def classic_recipe_config(device, precision, batch) -> Config:
    """The `classic` recipe (the Config defaults) at a fixed batch and precision."""
    cfg = Config()
    for key, value in {"train.batch_size": batch, "train.device": device, "train.precision": precision,
                       "train.progress": False, "train.max_steps": 1}.items():
        set_value(cfg, key, value)
    return validate(cfg)


def default_recipe_config(device, **train) -> Config:
    """What `ganforge train --device DEVICE` trains with: the default recipe, precision auto
    (``train`` options such as compile="default" on top)."""
    extra = [(f"train.{k}", v) for k, v in train.items()]
    return build_config(None, None, [("train.device", device), ("train.progress", False), ("train.max_steps", 1),
                                     *extra])


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


# ---------------------------------------------------------------------- arithmetic

def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matrix product: what this device's arithmetic reaches at its best."""
    n = 8192 if device.startswith("cuda") else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    _sync(device)
    reps = 20 if device.startswith("cuda") else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


class FlopCount(TorchDispatchMode):
    """Matrix and convolution FLOPs of everything run inside it, by torch's own FLOP formulas. (torch's
    FlopCounterMode tracks modules with backward hooks that an ``autograd.grad(create_graph=True)`` inside
    it, R1's, does not support; counting at the dispatch level needs no hooks.)"""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def flops_per_image(step, images_per_call: int, calls: int = 1) -> float:
    """Matrix and convolution FLOPs per training image of ``calls`` calls of ``step`` (forward, backward
    and the double backward of penalties)."""
    with FlopCount() as counter:
        for _ in range(calls):
            step()
    return counter.total / (images_per_call * calls)


def arithmetic_table(images, res, channels, device, batch, default_cfg, rates, peak_bf16, peak_fp32):
    """FLOPs per image of the classic and default steps, and the FLOP/s each reached (the measured rates)."""
    classic = ClassicLoop(images, res, channels, device, batch)
    trainer = make_trainer(default_cfg, images, res, channels)
    cycle = whole_cycles(default_cfg, 1)
    per_image = {"classic": flops_per_image(classic.step, batch),
                 "default": flops_per_image(trainer.train_step, default_cfg.train.batch_size * default_cfg.train.d_steps,
                                            cycle)}
    bf16 = f"bf16 {peak_bf16 / 1e9:.3g} GFLOP/s" if peak_bf16 else "bf16 not native here, not measured"
    print(f"\n{res} px: arithmetic (matrix and convolution FLOPs counted by torch; peak = a large matrix product "
          f"measured here: fp32 {peak_fp32 / 1e9:.3g} GFLOP/s, {bf16})")
    print(f"{'step':<10} {'GFLOP/image':>12} {'images/s':>9} {'GFLOP/s':>8} {'of fp32 peak':>13} {'of bf16 peak':>13}")
    for name in ("classic", "default"):
        achieved = per_image[name] * rates[name]
        bf16_share = f"{achieved / peak_bf16:>12.0%}" if peak_bf16 else f"{'—':>12}"
        print(f"{name:<10} {per_image[name] / 1e9:>12.2f} {rates[name]:>9.0f} {achieved / 1e9:>8.0f} "
              f"{achieved / peak_fp32:>12.0%} {bf16_share}")


# ---------------------------------------------------------------------- sampling

@torch.no_grad()
def sampling_speed(default_cfg, images, res, channels, batch: int, reps: int) -> tuple[float, float]:
    """Images/s of the sampling generator (the average, eval mode, the run's precision) at ``batch``, and the
    median latency of one image in milliseconds."""
    trainer = make_trainer(default_cfg, images, res, channels)
    G, device, precision = trainer.sampling_generator, trainer.device, trainer.precision
    z_dim = trainer.state.z_dim

    def generate(n):
        with precision.autocast():
            return G(torch.randn(n, z_dim, device=device))

    for n in (batch, 1, 1):
        generate(n)
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        generate(batch)
    _sync(device)
    rate = batch * reps / (time.perf_counter() - start)
    latencies = []
    for _ in range(max(reps, 10)):
        start = time.perf_counter()
        generate(1)
        _sync(device)
        latencies.append(time.perf_counter() - start)
    return rate, 1000 * statistics.median(latencies)


def peak_memory_mb(device: str) -> str:
    if not device.startswith("cuda"):
        return "-"
    return f"{torch.cuda.max_memory_allocated(torch.device(device)) / 2**20:.0f}"


VARIANTS = ("classic", "fp32", "bf16", "default", "channels_last", "compiled")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="batch of the classic loop and the classic recipe")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per measurement (default: 10 on CPU, 100 on GPU)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="classic,fp32,bf16,default,channels_last",
                        help=f"comma list of {', '.join(VARIANTS)} (classic and default always run)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode of the `compiled` variant (reduce-overhead: CUDA graphs)")
    parser.add_argument("--batch-sizes", default="", help="also time the default recipe at these batch sizes "
                                                          "(images/s and, on a GPU, peak memory)")
    parser.add_argument("--no-arithmetic", action="store_true", help="skip the FLOP count and matrix-product peaks")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    steps = args.steps or (100 if gpu else 10)
    warmup = 10 if gpu else 2
    variants = [v for v in VARIANTS if v in set(args.variants.split(",")) | {"classic", "default"}]
    configs = {
        "fp32": lambda: classic_recipe_config(args.device, "fp32", args.batch),
        "bf16": lambda: classic_recipe_config(args.device, "bf16", args.batch),
        "default": lambda: default_recipe_config(args.device),
        "channels_last": lambda: default_recipe_config(args.device, channels_last=True),
        "compiled": lambda: default_recipe_config(args.device, compile=args.compile_mode),
    }
    default_cfg = configs["default"]()
    print(machine_description(args.device))
    default_steps = whole_cycles(default_cfg, steps)
    print(f"torch {torch.__version__}; {steps} timed steps x {args.rounds} rounds"
          + (f" ({default_steps} for the default recipe: whole R1 cycles)" if default_steps != steps else "")
          + f"; classic and the classic recipe at batch {args.batch}, the default recipe at batch "
          f"{default_cfg.train.batch_size}")
    print(f"variants: classic = the classic loop, float32; fp32/bf16 = ganforge's step with the classic recipe; "
          f"default = `ganforge train` (recipe {DEFAULT_RECIPE!r}, precision auto); channels_last / compiled = "
          f"default with train.channels_last / train.compile={args.compile_mode}")
    header = f"{'px':>4} " + " ".join(f"{v:>13}" for v in variants) + "  " + " ".join(
        f"{v + '/classic':>20}" for v in variants[1:])
    print(header, flush=True)
    default_precisions = set()
    # an emulated bf16 product (a CPU without native bf16) runs at ~0.3 GFLOP/s: minutes to time, and no ceiling
    bf16_native = args.device.startswith("cuda") or cpu_has_native_bf16()
    peaks = None if args.no_arithmetic else (matmul_peak(args.device, torch.bfloat16) if bf16_native else None,
                                              matmul_peak(args.device, torch.float32))
    for res in map(int, args.resolutions.split(",")):
        images = synthetic_images(2048, args.channels, res)
        runs = {v: [] for v in variants}
        for _ in range(args.rounds):  # interleaved so that drift hits every variant alike
            # each variant under its own backend settings: what a Trainer sets (TF32, cudnn.benchmark
            # on CUDA) is undone before the next one, so the classic loop always runs under the defaults
            for variant in variants:
                with backend_settings():
                    if variant == "classic":
                        runs[variant].append(classic_loop(images, res, args.channels, args.device, steps, warmup,
                                                          args.batch))
                        continue
                    try:
                        ips, precision = trainer_loop(configs[variant](), images, res, args.channels, steps, warmup)
                    except Exception as exc:  # an optional variant that fails here is reported, not fatal
                        if variant == "default":
                            raise
                        print(f"  {variant}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                        ips = float("nan")
                    runs[variant].append(ips)
                    if variant == "default":
                        default_precisions.add(precision)
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{res:>4} " + " ".join(f"{med[v]:>13.0f}" for v in variants) + "  " + " ".join(
            f"{med[v] / med['classic']:>19.2f}x" for v in variants[1:]), flush=True)
        if peaks is not None:
            with backend_settings():
                arithmetic_table(images, res, args.channels, args.device, args.batch, default_cfg, med, *peaks)
        if args.batch_sizes:
            print(f"\n{res} px: the default recipe by batch size (images/s, median of {args.rounds}; "
                  f"peak memory in MiB on a GPU)")
            for b in map(int, args.batch_sizes.split(",")):
                rates = []
                for _ in range(args.rounds):
                    if gpu:
                        torch.cuda.reset_peak_memory_stats()
                    with backend_settings():
                        cfg = default_recipe_config(args.device, batch_size=b)
                        rates.append(trainer_loop(cfg, images, res, args.channels, steps, warmup)[0])
                print(f"  batch {b:>5}: {statistics.median(rates):>9.0f} images/s  "
                      f"{statistics.median(rates) / med['classic']:>6.2f}x classic  memory {peak_memory_mb(args.device)}",
                      flush=True)
        with backend_settings():
            rate, latency = sampling_speed(default_cfg, images, res, args.channels, 256 if gpu else 64, 20 if gpu else 5)
        print(f"\n{res} px sampling (averaged G, eval mode): {rate:.0f} images/s at batch {256 if gpu else 64}; "
              f"one image {latency:.1f} ms (median)\n", flush=True)
    print(f"images/s, median over rounds; ratios > 1 mean ganforge is faster; default = recipe "
          f"{DEFAULT_RECIPE!r}, precision auto -> {'/'.join(sorted(default_precisions))}")


if __name__ == "__main__":
    main()
