"""``ganforge sample RUN --n N --out grid.png | folder/ | samples.npz``."""
from __future__ import annotations

import argparse
import sys

from ..choices import CLASS_MIXES
from ..errors import GanforgeError


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate images from a trained run")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint folder")
    p.add_argument("--n", type=int, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="grid.png (one image), samples.npz (uint8 array) or a folder of PNGs; "
                   "with --interpolate also walk.gif or walk.webp (an animation)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same images)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--nrow", type=int, help="images per grid row")
    p.add_argument("--no-ema", action="store_true", help="use G's last weights, not their moving average")
    p.add_argument("--class", dest="sample_class", metavar="NAME", help="conditional runs: every image of this one "
                   "class, by name or index")
    p.add_argument("--class-mix", choices=CLASS_MIXES, help="conditional runs: how the images' classes are drawn: "
                   "balanced (default for arrays and folders; a grid has one row per class) or data (the training "
                   "data's proportions)")
    p.add_argument("--classes", dest="old_class_mix", choices=CLASS_MIXES, help=argparse.SUPPRESS)  # before 0.2
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="StyleGAN2 runs: the truncation "
                   "trick, styles pulled towards the average by psi (1: none, 0.7: typical; trades variety for quality)")
    p.add_argument("--interpolate", type=int, metavar="K", help="a latent walk through K random points and back "
                   "(conditional runs: through the classes too, or within --class); instead of --n samples")
    p.add_argument("--frames", type=int, default=16, help="with --interpolate: frames from one point to the next")
    p.add_argument("--fps", type=float, default=24.0, help="with --interpolate: animation frames per second")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (scripts and logs)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..sampling import write_samples

    if args.old_class_mix:
        print("ganforge: warning: --classes is now --class-mix (--class still picks one class)", file=sys.stderr)
        args.class_mix = args.class_mix or args.old_class_mix
    if args.interpolate is not None:
        return _walk(args)
    args.n = 64 if args.n is None else args.n
    if args.n <= 0 or args.batch_size <= 0:
        raise GanforgeError("--n and --batch-size must be positive")
    if args.sample_class is not None and args.class_mix:
        raise GanforgeError("--class (one class) and --class-mix (a mix of classes) cannot be combined")
    written = write_samples(args.run, args.n, args.out, args.seed, batch_size=args.batch_size, nrow=args.nrow,
                            device=args.device, ema=not args.no_ema, classes=args.sample_class or args.class_mix,
                            truncation=args.truncation, progress=False if args.no_progress else None)
    print(f"wrote {written.n} images of shape {written.shape} (step {written.step}) to {written.path}")
    if written.privacy:
        from .train_cmd import describe_privacy

        print(f"differentially private generator: {describe_privacy(written.privacy)}")
    return 0


def _walk(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..interpolation import write_walk
    from ..sampling import load_generator

    if args.n is not None or args.class_mix:
        raise GanforgeError("--interpolate makes a walk of --interpolate x --frames frames: drop --n and --class-mix")
    if args.interpolate < 2 or args.frames < 1 or args.fps <= 0:
        raise GanforgeError("--interpolate needs at least 2 points, --frames at least 1 and --fps a positive rate")
    gen = load_generator(args.run, device=resolve_device(args.device), ema=not args.no_ema)
    gen.truncation = args.truncation
    several_batches = args.interpolate * args.frames > args.batch_size
    path, frames = write_walk(gen, args.interpolate, args.out, args.frames, args.seed, args.fps, args.sample_class,
                              args.batch_size, progress=several_batches and not args.no_progress)
    print(f"wrote a walk of {frames} frames through {args.interpolate} points (step {gen.step}) to {path}")
    return 0
