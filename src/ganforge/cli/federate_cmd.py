"""``ganforge federate``: federated training over Flower (simulate | server | site | keygen | decrypt)."""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from ..errors import GanforgeError
from .train_cmd import add_model_options, collect_overrides

SIMULATION_FILE = "simulation.json"  # simulate: the sites it started, for --resume


def add_parser(sub) -> None:
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
    _add_round_options(s)
    add_model_options(s)
    s.set_defaults(handler=run_simulate)

    v = fsub.add_parser("server", help="the server of a federation across machines",
                        description="Start a SuperLink, submit the federation and keep the global run in RUN.")
    target = v.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="RUN", help="the global run folder")
    target.add_argument("--resume", metavar="RUN", help="continue a federation from its last global round")
    v.add_argument("--host", default="0.0.0.0", help="address the sites connect to (default: all interfaces)")
    v.add_argument("--port", type=int, default=9092)
    _add_round_options(v)
    add_model_options(v)
    v.set_defaults(handler=run_server)

    t = fsub.add_parser("site", help="one site of a federation: trains on its own images",
                        description="Start a SuperNode that trains on SOURCE whenever the server asks; its images "
                                    "never leave this machine.")
    t.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's SuperLink")
    t.add_argument("--data", required=True, metavar="SOURCE")
    t.add_argument("--work", required=True, metavar="FOLDER", help="this site's own run and state")
    t.add_argument("--name", help="this site's name (default: the work folder's name); seeds its noise")
    t.add_argument("--he-key", metavar="FILE", help="the CKKS site key (ganforge federate keygen) for --he ckks")
    t.add_argument("--port", type=int, default=9094, help="local port of the SuperNode's ClientApp API")
    t.set_defaults(handler=run_site)

    k = fsub.add_parser("keygen", help="a CKKS key pair for --he ckks",
                        description="Write DIR/site.key (give it to every site, never to the server) and "
                                    "DIR/server.key (for the server).")
    k.add_argument("folder", metavar="DIR")
    k.set_defaults(handler=run_keygen)

    d = fsub.add_parser("decrypt", help="turn a CKKS federation's encrypted result into a run (needs the site key)")
    d.add_argument("run", metavar="RUN")
    d.add_argument("--key", required=True, metavar="FILE", help="site.key")
    d.add_argument("--out", required=True, metavar="RUN", help="where to write the decrypted run")
    d.set_defaults(handler=run_decrypt)


def _add_round_options(p) -> None:
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
    p.add_argument("--he-key", metavar="FILE", help="the server's CKKS key (server.key); simulate makes its own")


def _federation(args, sites: int | None = None):
    from ..federated.server import FederationConfig

    fed = FederationConfig()
    for name in ("rounds", "local_steps", "min_sites", "round_timeout", "shares", "threshold", "clipping_range",
                 "server_lr", "final_server_lr", "final_rounds", "server_momentum"):
        if getattr(args, name) is not None:
            setattr(fed, name, getattr(args, name))
    if args.min_sites is None and sites is not None:
        fed.min_sites = max(2 if args.secure_aggregation else 1, math.ceil(sites / 2))
    fed.secure_aggregation, fed.he = args.secure_aggregation, args.he
    if args.he_key:
        fed.he_context = str(Path(args.he_key).resolve())
    return fed.check()


def _config(args, data: str | None):
    from ..configure import build_config

    overrides = collect_overrides(args)
    if data is not None:
        overrides.insert(0, ("data.source", data))
    return build_config(args.recipe, args.config, overrides)


def _require(he: str | None) -> None:
    from ..federated import require_flower, require_tenseal

    require_flower()
    if he:
        require_tenseal()


def _until_done(run_dir: Path, command: str, run: Callable[[], object]) -> int:
    """Run the federation; on Ctrl-C say how to continue it, else report how it ended."""
    hint = f"ganforge federate {command} --resume {run_dir}"
    try:
        run()
    except KeyboardInterrupt:
        print(f"interrupted; continue with: {hint}", file=sys.stderr)
        return 130
    return _report(run_dir, hint)


def _report(run_dir: Path, resume_hint: str) -> int:
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


def _check_key(path: str, secret: bool) -> None:
    """A site needs the CKKS key with the secret; the server must not have it."""
    from ..federated.he import load_context

    if load_context(path).has_secret_key() != secret:
        raise GanforgeError(f"{path} holds no secret key: a site needs site.key, not server.key" if secret else
                            f"{path} holds the secret key: give the server server.key, never site.key")


def _threads_per_site(sites: int) -> int:
    """The cores of this machine shared out among simulated sites (they train at the same time)."""
    return max(1, (os.cpu_count() or 1) // sites)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a kill, a shutdown) stop the federation's processes instead of orphaning them.
    SIGINT is handled even when the parent shell ignores it (a command started in the background)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def run_simulate(args: argparse.Namespace) -> int:
    _stop_on_signals()
    from ..federated import launch
    from ..federated.partition import describe_split, write_partitions

    _require(args.he)
    if args.resume:
        run_dir = Path(args.resume)
        launch.resume_run(run_dir, args.rounds)
        sites = [launch.SiteSpec(**{**s, "work": Path(s["work"])})
                 for s in json.loads((run_dir / SIMULATION_FILE).read_text())["sites"]]
    else:
        if not args.data or not args.out:
            raise GanforgeError("federate simulate needs --data SOURCE and --out RUN (or --resume RUN)")
        run_dir = Path(args.out)
        cfg = _config(args, args.data)
        fed = _federation(args, args.sites)
        if fed.secure_aggregation and args.sites < 2:
            raise GanforgeError("secure aggregation needs at least 2 sites")
        if args.he and not args.he_key:
            from ..federated.he import keygen

            _, server_key = keygen(run_dir / "keys")
            fed.he_context = str(server_key.resolve())
        files = write_partitions(args.data, run_dir / "sites", args.sites, args.split, seed=cfg.train.seed,
                                 min_images=2, cache_dir=cfg.data.cache_dir, resolution=cfg.data.resolution)
        print(f"split {args.data} over {args.sites} sites ({args.split}):\n{describe_split(files)}")
        key = str((run_dir / "keys" / "site.key").resolve()) if args.he else None
        sites = [launch.SiteSpec(str(f.resolve()), f.parent.resolve(), f"site-{k}", key) for k, f in enumerate(files)]
        launch.prepare_run(run_dir, cfg, fed)
        (run_dir / SIMULATION_FILE).write_text(json.dumps(
            {"sites": [{**vars(s), "work": str(s.work)} for s in sites]}, indent=2) + "\n")
    for site in sites:  # (this machine's: not saved, a resume may run elsewhere)
        site.threads = _threads_per_site(len(sites))
    return _until_done(run_dir, "simulate", lambda: launch.simulate(run_dir, sites))


def run_server(args: argparse.Namespace) -> int:
    _stop_on_signals()
    from ..federated import launch, processes

    _require(args.he)
    if args.resume:
        run_dir = Path(args.resume)
        launch.resume_run(run_dir, args.rounds)
    else:
        run_dir = Path(args.out)
        fed = _federation(args)
        if fed.he and not fed.he_context:
            raise GanforgeError("--he ckks needs --he-key server.key (ganforge federate keygen)")
        if fed.he:
            _check_key(fed.he_context, secret=False)
        cfg = _config(args, None)
        cfg.data.source = "(the sites' images)"
        launch.prepare_run(run_dir, cfg, fed)
    print(f"SuperLink on {args.host}:{args.port}; start each site with: ganforge federate site --server "
          f"<this machine>:{args.port} --data SOURCE --work FOLDER")
    def serve() -> None:
        with processes.ProcessGroup() as group:
            launch.start_superlink(group, run_dir, args.host, args.port)
            launch.submit(group, run_dir)

    return _until_done(run_dir, "server", serve)


def run_site(args: argparse.Namespace) -> int:
    _stop_on_signals()
    from ..federated import launch, processes
    from ..federated.site import Site

    _require(args.he_key)
    if args.he_key:
        _check_key(args.he_key, secret=True)
    site = launch.SiteSpec(args.data, Path(args.work), args.name,
                           str(Path(args.he_key).resolve()) if args.he_key else None)
    described = Site(args.data, args.work, args.name).describe()  # a bad path or unreadable data fails here, now
    print(f"site {site.name or Path(args.work).resolve().name}: {described['images']:,} images from {args.data}, "
          f"serving {args.server} (Ctrl-C stops)")
    with processes.ProcessGroup() as group:
        node = launch.start_site(group, site, args.server, args.port)
        try:
            return node.wait()
        except KeyboardInterrupt:
            return 130


def run_keygen(args: argparse.Namespace) -> int:
    from ..federated.he import keygen

    site, server = keygen(args.folder)
    print(f"site key (secret: give it to every site, never to the server): {site}\nserver key: {server}")
    return 0


def run_decrypt(args: argparse.Namespace) -> int:
    from ..federated.he import decrypt_run

    out = decrypt_run(Path(args.run), Path(args.key), Path(args.out))
    print(f"decrypted run: {out}; sample with: ganforge sample {out}")
    return 0
