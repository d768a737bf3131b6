"""What the ``ganforge federate`` actions share: the round options, the federation's configuration, how a
federation ends (one line, a resume hint) and the checks of keys."""
from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from ..errors import GanforgeError
from .train_cmd import collect_overrides


def add_round_options(p) -> None:
    p.add_argument("--rounds", type=int, help="aggregation rounds (default 10)")
    p.add_argument("--local-steps", type=int, help="G steps each site takes per round (default 50)")
    p.add_argument("--min-sites", type=int, help="sites a round needs (default: half of them, at least 2)")
    p.add_argument("--round-timeout", type=float, metavar="SECONDS",
                   help="wait this long for the sites' updates; a round goes on without the late ones (default 600)")
    p.add_argument("--secure-aggregation", action="store_true", help="Flower's SecAgg+: the server learns only "
                   "the sum of the updates")
    p.add_argument("--shares", type=float, help="SecAgg+ key shares per site (an integer > 2, or a fraction of the "
                   "sites; default 1.0: all)")
    p.add_argument("--threshold", type=float, help="SecAgg+ shares needed to reconstruct (an integer, or a fraction; "
                   "default 0.5)")
    p.add_argument("--clipping-range", type=float, help="SecAgg+: every weight's change over a round is clipped to "
                   "this (default 1)")
    p.add_argument("--server-lr", type=float, help="the server applies the sites' mean change times this (default 1: "
                   "FedAvg; 2 with 4 sites trained faster on Fashion-MNIST, 4 diverged: docs/federated.md)")
    p.add_argument("--final-server-lr", type=float, help="the server learning rate of the last --final-rounds "
                   "rounds (default: --server-lr; 1 ends on the plain mean of the sites' models, which scored better "
                   "after --server-lr 2 on Fashion-MNIST: docs/federated.md)")
    p.add_argument("--final-rounds", type=int, help="how many of the last rounds take --final-server-lr (default 1)")
    p.add_argument("--server-momentum", type=float, help="FedAvgM momentum over rounds (default 0)")
    p.add_argument("--he", choices=["ckks"], help="encrypt the updates (TenSEAL CKKS): the server adds ciphertexts")
    p.add_argument("--max-site-images", type=int, metavar="N", help="the most a site's images count in the average "
                   "(default: the images a site's D sees in one round)")


def federation_config(args, sites: int | None = None):
    from ..federated.server import FederationConfig

    fed = FederationConfig()
    for name in ("rounds", "local_steps", "min_sites", "round_timeout", "shares", "threshold", "clipping_range",
                 "server_lr", "final_server_lr", "final_rounds", "server_momentum", "max_site_images"):
        if getattr(args, name) is not None:
            setattr(fed, name, getattr(args, name))
    if args.min_sites is None and sites is not None:
        fed.min_sites = max(2 if args.secure_aggregation else 1, math.ceil(sites / 2))
    fed.secure_aggregation, fed.he = args.secure_aggregation, args.he
    return fed.check()


def run_config(args, data: str | None):
    from ..configure import build_config

    overrides = collect_overrides(args)
    if data is not None:
        overrides.insert(0, ("data.source", data))
    return build_config(args.recipe, args.config, overrides)


def require_extras(he: str | None) -> None:
    from ..federated import require_flower, require_tenseal

    require_flower()
    if he:
        require_tenseal()


def until_done(run_dir: Path, command: str, run: Callable[[], object]) -> int:
    """Run the federation; on Ctrl-C say how to continue it, else report how it ended."""
    hint = f"ganforge federate {command} --resume {run_dir}"
    try:
        run()
    except KeyboardInterrupt:
        print(f"interrupted; continue with: {hint}", file=sys.stderr)
        return 130
    return report(run_dir, hint)


def report(run_dir: Path, resume_hint: str) -> int:
    from ..federated.launch import outcome

    done = outcome(run_dir)
    if done["round"] < done["rounds"]:
        print(f"federation stopped after round {done['round']} of {done['rounds']} (see {run_dir / 'logs'}); "
              f"continue with: {resume_hint}", file=sys.stderr)
        return 1
    last = done["last"]
    print(f"federation finished: {done['rounds']} rounds, {last.get('images', 0):,} images seen by the sites' D; "
          f"run folder {run_dir}")
    if (run_dir / "encrypted").is_dir():  # CKKS: the server holds only the encrypted model
        print(f"the model is encrypted; a key holder gets it with: ganforge federate decrypt {run_dir} "
              "--key site.key --out RUN")
    elif (run_dir / "samples" / "latest.png").is_file():
        print(f"samples: {run_dir / 'samples' / 'latest.png'}; more with: ganforge sample {run_dir}")
    return 0


def check_he_key(path: str, secret: bool) -> None:
    """A site needs the CKKS key with the secret; the server must not have it."""
    from ..federated.he import load_context

    if load_context(path).has_secret_key() != secret:
        raise GanforgeError(f"{path} holds no secret key: a site needs site.key, not server.key" if secret else
                            f"{path} holds the secret key: give the server server.key, never site.key")


def threads_per_site(sites: int) -> int:
    """The cores of this machine shared out among simulated sites (they train at the same time)."""
    return max(1, (os.cpu_count() or 1) // sites)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a kill, a shutdown) stop the federation's processes instead of orphaning them.
    SIGINT is handled even when the parent shell ignores it (a command started in the background)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
