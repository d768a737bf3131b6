"""Starting a federation: the server's run folder, its SuperLink and run, the sites' SuperNodes.

``ganforge federate server`` and ``site`` start one side each (separate machines);
``ganforge federate simulate`` starts both on this machine (:func:`simulate`), after splitting
one data set over the sites (:mod:`.partition`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    policy: dict[str, str] = field(default_factory=dict)  # what the site refuses (site_policy.SitePolicy.node_config)
    tls: proc.SiteTLS | None = None  # TLS and SuperNode authentication (None: plain HTTP)

    def node_config(self) -> dict[str, str | None]:
        """What the site's ClientApp reads (Flower's node config)."""
        return {"data": self.data, "work": str(Path(self.work).resolve()), "name": self.name, "he-key": self.he_key,
                **self.policy}

    def saved(self) -> dict:
        """The fields ``simulate --resume`` restarts the site with."""
        return {"data": self.data, "work": str(self.work), "name": self.name, "he_key": self.he_key}


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


def start_superlink(group: proc.ProcessGroup, run_dir: Path, host: str, port: int, tls: proc.ServerTLS | None = None,
                    site_keys: Sequence[Path] = ()):
    """A SuperLink keeping its state in RUN/.flower, listening on host:port; returns the process. With ``tls``,
    it serves TLS and admits only the SuperNodes whose public keys (``site_keys``) are registered here."""
    home = run_dir / ".flower"
    link_log = run_dir / "logs" / "superlink.log"
    link = group.start(proc.superlink_args(home, host, port, tls), proc.flower_env(home), log=link_log)
    proc.wait_listening(host, port, STARTUP_TIMEOUT, link, "the SuperLink", link_log)
    # TLS: the certificate must name localhost (ganforge federate keys adds it), which this machine connects to
    proc.write_connection(home, f"{'localhost' if tls else '127.0.0.1'}:{port}", tls.ca_certfile if tls else None)
    for key in site_keys:
        register_site(group, home, Path(key), link_log)
    return link


def register_site(group: proc.ProcessGroup, home: Path, public_key: Path, log: Path) -> None:
    """Register one site's public key with the local SuperLink (a key registered before is fine)."""
    register_log = log.with_name("register.log")
    process = group.start(proc.register_args(public_key), proc.flower_env(home), log=register_log)
    if process.wait(STARTUP_TIMEOUT) != 0 and "already in use" not in register_log.read_text(errors="replace"):
        raise GanforgeError(f"could not register the site key {public_key} with the SuperLink; see {register_log}")


def start_site(group: proc.ProcessGroup, site: SiteSpec, superlink: str, port: int | None = None,
               max_retries: int | None = None):
    """A SuperNode for ``site`` (its log in WORK/logs/supernode.log); returns the process. ``max_retries``:
    connection attempts before it gives up (None: Flower's default, no limit)."""
    work = Path(site.work)
    home = work / ".flower"
    args = proc.supernode_args(superlink, port or proc.free_port(), site.node_config(), site.tls)
    if max_retries is not None:
        args += ["--max-retries", str(max_retries)]
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
    """Run the federation in ``run_dir`` with ``sites`` as processes on this machine; returns :func:`outcome`.

    The SuperLink starts on a fresh database: the sites are this call's own processes, and one resumed on the
    database of an earlier start (a crash, Ctrl-C) took the old sites' nodes for live until their heartbeats
    expired, so the first round waited for them and counted them as failures. ganforge's state (the global
    run) lives in the run folder, not in Flower's database."""
    for stale in (run_dir / ".flower").glob("state.db*"):
        stale.unlink()
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
