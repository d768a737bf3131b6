"""``ganforge eval RUN_OR_IMAGES``: quality, diversity and memorisation against real images."""
from __future__ import annotations

import argparse

from ..choices import EXTRACTORS
from ..metrics.run_eval import DEFAULT_SEED
from ..errors import GanforgeError


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure how good, diverse and original generated images are",
                       description="Evaluate a run (sampling its generator) or a folder/zip/npz of generated images.")
    p.add_argument("target", metavar="RUN_OR_IMAGES", help="run folder, checkpoint folder, or generated images")
    p.add_argument("--real", metavar="SOURCE", help="real images to compare with (default: the run's training data)")
    p.add_argument("--train", metavar="SOURCE", help="training images, for memorisation (default: the run's data)")
    p.add_argument("--metrics", default=None,
                   help="comma list of fd, kid, is, pr, dc (density/coverage), modes, memorisation "
                        "(default: fd,kid,pr,dc, plus modes with labels and memorisation with a held-out --real)")
    p.add_argument("--n", type=int, default=10000, help="generated images, and at most this many real ones")
    p.add_argument("--extractor", default="auto", choices=EXTRACTORS)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="noise of the samples and the reference subset "
                   f"(default {DEFAULT_SEED}, as periodic evaluation during training)")
    p.add_argument("--device", default="auto", help="where the generator and the feature networks run: auto, cpu, "
                   "cuda or cuda:N")
    p.add_argument("--json", metavar="FILE", help="also write the results here (runs: RUN/eval/step-N.json by default)")
    p.add_argument("--cache-dir", help="cache for weights, domain networks and reference features")
    p.add_argument("--no-ema", action="store_true", help="evaluate G's last weights, not their moving average")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..metrics.run_eval import evaluate_run, format_results, save_results

    if args.n <= 1:
        raise GanforgeError("--n must be at least 2")
    results = evaluate_run(
        args.target, args.real, train=args.train, n=args.n, metrics=args.metrics, extractor=args.extractor,
        seed=args.seed, cache_dir=args.cache_dir, ema=not args.no_ema, device=resolve_device(args.device),
        progress=not args.no_progress,
    )
    print(format_results(results))
    out = save_results(results, args.json)
    if out:
        print(f"results: {args.json or out}")
    return 0
