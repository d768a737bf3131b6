"""``ganforge eval RUN_OR_IMAGES``: quality, diversity and memorisation against real images."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    p.add_argument("--extractor", default="auto", choices=["auto", "inception", "domain"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the results here (runs: RUN/eval/step-N.json by default)")
    p.add_argument("--cache-dir", help="cache for weights, domain networks and reference features")
    p.add_argument("--no-ema", action="store_true", help="evaluate G's last weights, not their moving average")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def _run_folder(target: Path) -> Path | None:
    """The run folder of a run or checkpoint path, or None for a set of images."""
    for folder in (target, target.parent.parent):
        if (folder / "config.json").is_file() and (folder / "checkpoints").is_dir():
            return folder
    return None


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..metrics.evaluate import Evaluator, parse_metrics
    from ..metrics.images import load_at_own_size
    from ..sampling import load_generator

    if args.n <= 1:
        raise GanforgeError("--n must be at least 2")
    progress = not args.no_progress
    target = Path(args.target)
    run_dir = _run_folder(target)
    step = None
    if run_dir is not None or (target / "generator.safetensors").is_file():
        gen = load_generator(target, ema=not args.no_ema)
        fake, step = gen.sample(args.n, seed=args.seed, progress=progress), gen.step
    else:
        fake, _, _ = load_at_own_size(str(target), n=args.n, seed=args.seed, progress=progress)
    train_data = Config.load(run_dir / "config.json").data if run_dir is not None else None
    if args.train:
        train_data = args.train
    if args.real is None and train_data is None:
        raise GanforgeError("pass --real SOURCE: the real images to compare the generated ones with")

    train = load_at_own_size(train_data, n=None, progress=progress) if train_data is not None else None
    if args.real is not None:
        real_images, real_labels, class_names = load_at_own_size(args.real, n=args.n, seed=args.seed, progress=progress)
        held_out = True
    else:
        real_images, real_labels, class_names = load_at_own_size(train_data, n=args.n, seed=args.seed, progress=progress)
        held_out = False
    if args.metrics:
        metrics = parse_metrics(args.metrics)
    else:
        metrics = ["fd", "kid", "pr", "dc"] + (["modes"] if real_labels is not None else [])
        metrics += ["memorisation"] if held_out and train is not None else []

    evaluator = Evaluator(
        real_images, real_labels,
        train=train[0] if held_out and train is not None else None,
        train_labels=train[1] if held_out and train is not None else None,
        extractor=args.extractor, cache_dir=args.cache_dir, progress=progress,
    )
    results = evaluator(fake, metrics)
    if class_names and "classes_missing" in results:
        results["classes_missing"] = [class_names[i] for i in results["classes_missing"]]
    results.update(target=str(target), real=str(args.real or train_data.source), step=step)
    print(format_table(results))
    out = args.json or (run_dir / "eval" / f"step-{step:08d}.json" if run_dir is not None and step is not None else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"results: {out}")
    return 0


def format_table(results: dict) -> str:
    width = max(len(k) for k in results)
    lines = []
    for key, value in results.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
