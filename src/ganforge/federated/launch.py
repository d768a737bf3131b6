"""Starting a federation: the server's run folder, its SuperLink and run, the sites' SuperNodes.

``ganforge federate server`` and ``site`` start one side each (separate machines);
``ganforge federate simulate`` starts both on this machine (:func:`simulate`), after splitting
one data set over the sites (:mod:`.partition`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import Config
from ..errors import GanforgeError
from . import processes as proc
from .server import FEDERATION_FILE, FederationConfig

STARTUP_TIMEOUT = 60.0  # seconds for the SuperLink to listen


@dataclass
class SiteSpec:
    data: str  # the site's images (any ganforge source)
    work: Path  # the site's folder: its own run (optimiser state, accountant), Flower's state
    name: str | None = None
    he_key: str | None = None  # CKKS: the site key (with the secret)
    threads: int | None = None  # CPU threads of its training (simulate: the machine's cores shared out)


def prepare_run(run_dir: Path, cfg: Config, fed: FederationConfig) -> None:
    """A new federated run folder: config.json (what the sites train) and federation.json (the rounds)."""
    if (run_dir / "checkpoints").exists():
        raise GanforgeError(f"{run_dir} already holds a federated run: continue it with --resume {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.json")
    fed.check().save(run_dir / FEDERATION_FILE)


def resume_run(run_dir: Path, rounds: int | None = None) -> FederationConfig:
    """Check that ``run_dir`` can be continued (a longer ``rounds`` may be set)."""
    fed = FederationConfig.load(run_dir / FEDERATION_FILE)
    if rounds is not None and rounds != fed.rounds:
        fed.rounds = rounds
        fed.check().save(run_dir / FEDERATION_FILE)
    return fed


def start_superlink(group: proc.ProcessGroup, run_dir: Path, host: str, port: int):
    """A SuperLink keeping its state in RUN/.flower, listening on host:port; returns the process."""
    home = run_dir / ".flower"
    link_log = run_dir / "logs" / "superlink.log"
    link = group.start(proc.superlink_args(home, host, port), proc.flower_env(home), log=link_log)
    proc.wait_listening(host, port, STARTUP_TIMEOUT, link, "the SuperLink", link_log)
    proc.write_connection(home, f"127.0.0.1:{port}")
    return link


def start_site(group: proc.ProcessGroup, site: SiteSpec, superlink: str, port: int | None = None):
    """A SuperNode for ``site`` (its log in WORK/logs/supernode.log); returns the process."""
    work = Path(site.work)
    home = work / ".flower"
    args = proc.supernode_args(superlink, port or proc.free_port(), site.data, work, site.name, site.he_key)
    env = proc.flower_env(home)
    if site.threads:  # torch reads it when the ClientApp starts: sites on one machine do not oversubscribe it
        env["OMP_NUM_THREADS"] = str(site.threads)
    return group.start(args, env, log=work / "logs" / "supernode.log")


def submit(group: proc.ProcessGroup, run_dir: Path, log: Path | None = None) -> int:
    """Submit the federation to the local SuperLink and wait for it to end; returns the exit code of ``flwr run``."""
    home = run_dir / ".flower"
    process = group.start(proc.submit_args(run_dir), proc.flower_env(home), log=log)
    return process.wait()


def outcome(run_dir: Path) -> dict:
    """The last round logged and the planned rounds, for the closing message."""
    fed = FederationConfig.load(run_dir / FEDERATION_FILE)
    last: dict = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "round" in record:
                last = record
    return {"rounds": fed.rounds, "round": last.get("round", 0), "last": last}


def simulate(run_dir: Path, sites: Sequence[SiteSpec], port: int | None = None, log: Path | None = None,
             group: proc.ProcessGroup | None = None) -> dict:
    """Run the federation in ``run_dir`` with ``sites`` as processes on this machine; returns :func:`outcome`."""
    port = port or proc.free_port()
    own = group is None
    group = group or proc.ProcessGroup()
    try:
        start_superlink(group, run_dir, "127.0.0.1", port)
        for site in sites:
            start_site(group, site, f"127.0.0.1:{port}")
        submit(group, run_dir, log)
    finally:
        if own:
            group.stop_all()
    return outcome(run_dir)
