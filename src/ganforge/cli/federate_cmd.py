"""``ganforge federate``: federated training over Flower (simulate | server | site | keys | keygen | decrypt).

``simulate`` (this module) runs a whole federation on this machine; the actions of a federation across
machines are in :mod:`.federate_remote_cmd`, the keys and certificates in :mod:`.federate_keys_cmd`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import GanforgeError
from .federate_common import (add_round_options, federation_config, require_extras, run_config, stop_on_signals,
                              threads_per_site, until_done)
from .train_cmd import add_model_options

SIMULATION_FILE = "simulation.json"  # simulate: the sites it started, for --resume


def add_parser(sub) -> None:
    from . import federate_keys_cmd, federate_remote_cmd

    p = sub.add_parser("federate", help="train across sites that keep their images (Flower)",
                       description="Federated training: sites train G and D on their own images, a server averages "
                                   "their updates. Needs the federated extra; see docs/federated.md.")
    fsub = p.add_subparsers(dest="federate_command", metavar="ACTION", required=True)

    s = fsub.add_parser("simulate", help="a federation on this machine: split a data set over sites and train",
                        description="Split one data set over simulated sites and run server and sites as processes "
                                    "on this machine (Flower's deployment runtime on localhost).")
    s.add_argument("--data", metavar="SOURCE", help="labelled data set to split (as ganforge train --data)")
    s.add_argument("--sites", type=int, default=4)
    s.add_argument("--split", default="iid", help="iid, classes (each class on one site) or dirichlet:ALPHA")
    target = s.add_mutually_exclusive_group()
    target.add_argument("--out", metavar="RUN", help="the server's run folder (sites in RUN/sites)")
    target.add_argument("--resume", metavar="RUN", help="continue a federation from its last global round")
    add_round_options(s)
    s.add_argument("--he-key", metavar="FILE", help="with --he ckks: the site key (site.key) the simulated sites "
                   "use; the server's key is made from it (default: a new pair in RUN/keys)")
    add_model_options(s)
    s.set_defaults(handler=run_simulate)

    federate_remote_cmd.add_parsers(fsub)
    federate_keys_cmd.add_parsers(fsub)


def _simulation_keys(args, run_dir: Path) -> tuple[str | None, str | None]:
    """(site key, server key) of a simulated CKKS federation: made in RUN/keys, or the server's from --he-key."""
    from ..federated import he

    if not args.he:
        if args.he_key:
            raise GanforgeError("--he-key goes with --he ckks")
        return None, None
    if args.he_key:
        site_key = Path(args.he_key).resolve()
        return str(site_key), str(he.server_key_from(site_key, run_dir / "keys").resolve())
    keys = run_dir / "keys"
    existing = (keys / he.SITE_KEY, keys / he.SERVER_KEY)  # an earlier attempt that stopped before round 0
    site_key, server_key = existing if all(k.is_file() for k in existing) else he.keygen(keys)
    return str(site_key.resolve()), str(server_key.resolve())


def run_simulate(args: argparse.Namespace) -> int:
    stop_on_signals()
    from ..federated import launch
    from ..federated.partition import describe_split, write_partitions

    require_extras(args.he)
    if args.resume:
        run_dir = Path(args.resume)
        launch.resume_run(run_dir, args.rounds)
        sites = [launch.SiteSpec(**{**s, "work": Path(s["work"])})
                 for s in json.loads((run_dir / SIMULATION_FILE).read_text())["sites"]]
    else:
        if not args.data or not args.out:
            raise GanforgeError("federate simulate needs --data SOURCE and --out RUN (or --resume RUN)")
        run_dir = Path(args.out)
        cfg = run_config(args, args.data)
        fed = federation_config(args, args.sites)
        if fed.secure_aggregation and args.sites < 2:
            raise GanforgeError("secure aggregation needs at least 2 sites")
        site_key, fed.he_context = _simulation_keys(args, run_dir)
        files = write_partitions(args.data, run_dir / "sites", args.sites, args.split, seed=cfg.train.seed,
                                 min_images=2, cache_dir=cfg.data.cache_dir, resolution=cfg.data.resolution)
        print(f"split {args.data} over {args.sites} sites ({args.split}):\n{describe_split(files)}")
        sites = [launch.SiteSpec(str(f.resolve()), f.parent.resolve(), f"site-{k}", site_key)
                 for k, f in enumerate(files)]
        launch.prepare_run(run_dir, cfg, fed)
        (run_dir / SIMULATION_FILE).write_text(json.dumps({"sites": [s.saved() for s in sites]}, indent=2) + "\n")
    for site in sites:  # (this machine's: not saved, a resume may run elsewhere)
        site.threads = threads_per_site(len(sites))
    return until_done(run_dir, "simulate", lambda: launch.simulate(run_dir, sites))
