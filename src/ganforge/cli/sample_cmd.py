"""``ganforge sample RUN --n N --out grid.png | folder/ | samples.npz``."""
from __future__ import annotations

import argparse

from ..errors import GanforgeError


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate images from a trained run")
    p.add_argument("run", metavar="RUN", help="run folder or checkpoint folder")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="grid.png (one image), samples.npz (uint8 array) or a folder of PNGs")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same images)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--nrow", type=int, help="images per grid row")
    p.add_argument("--no-ema", action="store_true", help="use G's last weights, not their moving average")
    p.add_argument("--class", dest="sample_class", metavar="NAME", help="conditional runs: one class, by name or index")
    p.add_argument("--classes", choices=["balanced", "data"], help="conditional runs: classes balanced (default for "
                   "arrays and folders; a grid has one row per class) or in the training data's proportions")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..sampling import write_samples

    if args.n <= 0 or args.batch_size <= 0:
        raise GanforgeError("--n and --batch-size must be positive")
    if args.sample_class is not None and args.classes:
        raise GanforgeError("--class and --classes cannot be combined")
    written = write_samples(args.run, args.n, args.out, args.seed, batch_size=args.batch_size, nrow=args.nrow,
                            device=args.device, ema=not args.no_ema, classes=args.sample_class or args.classes)
    print(f"wrote {written.n} images of shape {written.shape} (step {written.step}) to {written.path}")
    return 0
