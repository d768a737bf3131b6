"""``ganforge train``: flags to overrides; the configuration is built by :mod:`ganforge.configure`, then trained."""
from __future__ import annotations

import argparse
import sys

from ..choices import COMPILE_MODES, FIT_CHOICES, OPTIMIZERS, PRECISIONS
from ..config import parse_override
from ..errors import ConfigError

# flag -> config key; each flag is a shortcut for --set KEY=VALUE
FLAG_KEYS = {
    "data": "data.source",
    "resolution": "data.resolution",
    "channels": "data.channels",
    "fit": "data.fit",
    "limit": "data.limit",
    "max_steps": "train.max_steps",
    "epochs": "train.max_epochs",
    "max_time": "train.max_time",
    "batch_size": "train.batch_size",
    "d_steps": "train.d_steps",
    "precision": "train.precision",
    "compile": "train.compile",
    "device": "train.device",
    "seed": "train.seed",
    "sample_every": "train.sample_every",
    "eval_every": "train.eval_every",
    "ema_kimg": "train.ema_kimg",
    "loss": None,  # sets loss.d and its natural loss.g
    "g_loss": "loss.g",
    "optimizer": None,  # sets both g_optim.name and d_optim.name
    "lr": None,  # sets both learning rates
    "dp_epsilon": "dp.epsilon",
    "dp_delta": "dp.delta",
    "dp_noise": "dp.noise",
    "dp_max_grad_norm": "dp.max_grad_norm",
}


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a GAN", description="Train a GAN. Options not listed here: --set section.key=value.")
    p.add_argument("--data", metavar="SOURCE", help="folder, .zip, .npz/.npy, mnist | fashion-mnist | cifar10, or builtin:shapes (default)")
    p.add_argument("--out", metavar="RUN", help="run folder (default: runs/NNNNN-<data>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its newest checkpoint")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--max-steps", type=int, help="stop after this many G steps")
    p.add_argument("--epochs", type=float, help="stop after this many passes over the data")
    p.add_argument("--max-time", metavar="DURATION", help="stop after this much training time, e.g. 90s, 10m, 2h")
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--compile", choices=COMPILE_MODES,
                   help="torch.compile G and D (reduce-overhead: CUDA graphs); penalty steps stay eager; "
                        "none by default (docs/benchmarks.md has what it gained)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--sample-every", type=int, help="steps between sample grids")
    p.add_argument("--eval-every", type=int, help="steps between evaluations (metrics in the log, best weights kept)")
    add_model_options(p)
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    p.set_defaults(handler=run)


def add_model_options(p) -> None:
    """The options of what is trained and how (recipe, networks, losses, optimisers, privacy); ganforge
    federate takes them too."""
    from ..recipes import DEFAULT_RECIPE, RECIPES

    p.add_argument("--recipe", metavar="NAME", help=f"preset of options: {', '.join(RECIPES)} (default "
                   f"{DEFAULT_RECIPE}, or dp with --dp-epsilon/--dp-noise); applied before --config and the other "
                   "flags")
    p.add_argument("--config", metavar="FILE", help="YAML file with config sections (data, model, loss, reg, "
                   "g_optim, d_optim, train, monitor)")
    p.add_argument("--resolution", type=int, help="training size (power of two, 16-256; default from the data)")
    p.add_argument("--channels", type=int, help="convert images to this many channels (1-4)")
    p.add_argument("--fit", choices=FIT_CHOICES, help="how images are brought to the training size")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--d-steps", type=int, help="D updates per G update")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="optimiser for both networks")
    p.add_argument("--lr", type=float, help="learning rate for both networks")
    p.add_argument("--loss", metavar="NAME", help="adversarial loss for D and G: minimax (default), wasserstein, "
                   "hinge, least_squares or relativistic")
    p.add_argument("--g-loss", help="G's loss when several fit D's: nonsaturating (default) or saturating for "
                   "minimax")
    p.add_argument("--seed", type=int)
    p.add_argument("--ema-kimg", type=float, help="half-life of G's weight average in thousands of images (0: off)")
    p.add_argument("--conditional", action="store_true", help="class-conditional G(z, c) and D(x, c); needs labelled "
                   "data (class folders, an npz with labels, or a named set)")
    p.add_argument("--dp-epsilon", type=float, metavar="EPS", help="differentially private training (needs the "
                   "privacy extra): D's updates clipped per image and noised so the run ends at this epsilon; "
                   "see docs/privacy.md")
    p.add_argument("--dp-delta", type=float, metavar="DELTA", help="delta of the guarantee (default: below 1/N)")
    p.add_argument("--dp-noise", type=float, metavar="SIGMA", help="private training with this noise multiplier "
                   "(epsilon is then reported; with --dp-epsilon too, the run stops at that budget)")
    p.add_argument("--dp-max-grad-norm", type=float, metavar="C", help="per-image clipping bound of D's gradient "
                   "(default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any option, e.g. --set model.d_norm=group (repeatable)")


def collect_overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    """Flags and --set pairs as (key, value), in the order they apply."""
    pairs: list[tuple[str, object]] = []
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)  # (ganforge federate has only the model options)
        if value is None:
            continue
        if flag == "loss":
            from ..losses.adversarial import LOSS_PAIRS

            if value not in LOSS_PAIRS:
                raise ConfigError(f"--loss must be one of {', '.join(LOSS_PAIRS)}, got {value!r}")
            pairs += [("loss.d", LOSS_PAIRS[value][0]), ("loss.g", LOSS_PAIRS[value][1])]
        elif flag == "optimizer":
            pairs += [("g_optim.name", value), ("d_optim.name", value)]
        elif flag == "lr":
            pairs += [("g_optim.lr", value), ("d_optim.lr", value)]
        else:
            pairs.append((key, value))
    if args.conditional:
        pairs.append(("model.conditional", True))
    if getattr(args, "tensorboard", False):
        pairs.append(("train.tensorboard", True))
    if getattr(args, "no_progress", False):
        pairs.append(("train.progress", False))
    pairs += [parse_override(text) for text in args.overrides]
    return pairs


def describe_privacy(p: dict, planned: bool = False) -> str:
    """One line on a private run's guarantee, from its metadata (see PrivateTraining.summary)."""
    budget = f"budget epsilon {p['epsilon_budget']:g}" if p.get("epsilon_budget") is not None else "no budget"
    head = (f"{budget}, delta {p['delta']:.0e}" if planned else
            f"epsilon = {p['epsilon']:.3g} spent ({budget}), delta {p['delta']:.0e}, after {p['d_steps']} D steps")
    labels = f"; classes {p['labels']}" if p.get("labels") else ""
    return (f"{head}; noise multiplier {p['noise_multiplier']:.4g}, clipping {p['max_grad_norm']:g}, sampling rate "
            f"{p['sample_rate']:.4g} of {p['records']} images ({p['accountant']} accountant){labels}")


def run(args: argparse.Namespace) -> int:
    from ..configure import describe_plan, plan_run
    from ..training import distributed

    if distributed.launched() and not (args.out or args.resume or args.dry_run):
        raise ConfigError("under torchrun, name the run folder with --out RUN (or --resume RUN)")
    plan = plan_run(args.recipe, args.config, collect_overrides(args), out=args.out, resume_dir=args.resume or None)
    if args.dry_run:
        print(describe_plan(plan), end="")
        return 0
    cfg, run_dir, resume = plan
    from ..training.loop import Trainer

    trainer = Trainer(cfg, run_dir, resume=resume)
    say = print if trainer.ranks.is_main else (lambda *a, **k: None)  # one voice for all the processes
    data = trainer.dataset
    g = data.geometry
    say(
        f"data: {len(data)} images {g.channels}x{g.resolution}x{g.resolution} (fit={g.fit}) from {data.source}"
        + (f", {len(data.class_names)} classes" if data.class_names else "")
        + (f", {len(data.skipped)} unreadable files skipped" if data.skipped else "")
    )
    ranks = trainer.ranks
    say(f"device: {trainer.device} precision: {trainer.precision.name}  run folder: {run_dir}"
        + (f"  processes: {ranks.world_size} (batch {cfg.train.batch_size} each)" if ranks.enabled else "")
        + (f"  resuming at step {trainer.step}" if resume else ""))
    for notice in trainer.notices:
        say(f"note: {notice}")
    privacy = trainer.extension_summaries().get("privacy")
    if privacy is not None:
        say(f"privacy: {describe_privacy(privacy, planned=True)}")
    try:
        summary = trainer.run()
    finally:
        distributed.shutdown()
    say(f"stopped at step {summary['step']}: {summary['reason']}; checkpoint {summary['checkpoint']}")
    if "privacy" in summary:
        say(f"privacy: {describe_privacy(summary['privacy'])}")
    say(f"samples: {run_dir / 'samples' / 'latest.png'}")
    if summary["interrupted"]:
        if ranks.is_main:
            print(f"resume with: ganforge train --resume {run_dir}", file=sys.stderr)
        return 130
    return 0
