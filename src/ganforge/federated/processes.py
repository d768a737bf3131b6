"""Flower's deployment runtime as processes: a SuperLink, SuperNodes and the submitted run.

The server machine runs a SuperLink (``flower-superlink``: the sites connect to it over HTTP) and
submits the federation to it with ``flwr run`` (the ganforge Flower App in
``ganforge/federated/flower``); the SuperLink starts the ServerApp, which drives the rounds. Each
site runs a SuperNode (``flower-supernode``) that starts the ClientApp for every message. Flower's
own state (its database, the app it unpacked, the connection the ``flwr`` command uses) lives in
``FLWR_HOME``, a ``.flower`` folder in the run or site folder, never in the user's home.

Every child gets its own process group, so stopping it also stops the ClientApp or ServerApp it
started; :class:`ProcessGroup` stops them all on exit, Ctrl-C included.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from ..errors import GanforgeError

APP_DIR = Path(__file__).with_name("flower")  # the Flower App that `flwr run` submits
CONNECTION = "ganforge"  # the SuperLink connection the run is submitted through
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


def flower_env(home: Path) -> dict[str, str]:
    """The environment of a Flower process: its own FLWR_HOME, and this Python's scripts first on PATH
    (the SuperLink and SuperNodes start ``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp``)."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home.resolve())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Flower's own task polling (1 s) is kept: polling 5 times a second started each ClientApp sooner, but on two
    # cores the polls of a few SuperLinks and SuperNodes cost more CPU than they saved in waiting (the Flower tests:
    # 160 s at 0.2 s against 142 s at 1 s, ~12% less CPU).
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(host: str, port: int, timeout: float, process: subprocess.Popen | None = None,
                   what: str = "the SuperLink", log: Path | None = None) -> None:
    """Wait until something accepts connections on host:port (or the process exits: an error)."""
    deadline = time.monotonic() + timeout
    # (where this check connects, not where anything listens: a server the user bound to every interface
    # is reached through this machine's loopback)
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise GanforgeError(f"{what} exited with code {process.returncode}" + (f"; see {log}" if log else ""))
        try:
            with socket.create_connection((connect_host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise GanforgeError(f"{what} did not start listening on {host}:{port} within {timeout:.0f} s"
                        + (f"; see {log}" if log else ""))


def write_connection(home: Path, address: str, root_certificates: Path | None = None) -> None:
    """The ``flwr`` command's connection to the local SuperLink (FLWR_HOME/config.toml): plain HTTP, or TLS
    checked against ``root_certificates`` (the federation's CA)."""
    home.mkdir(parents=True, exist_ok=True)
    security = (f'root-certificates = "{Path(root_certificates).resolve()}"' if root_certificates
                else "insecure = true")
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\naddress = "{address}"\n{security}\n')


class ProcessGroup:
    """Child processes started together and stopped together (SIGTERM to each group, then SIGKILL)."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []
        self._logs: list[IO] = []

    def start(self, args: Sequence[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")
            self._logs.append(out)
        process = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen, grace: float = STOP_GRACE) -> None:
        """SIGTERM to the process's group and its descendants' groups; SIGKILL after ``grace`` seconds, and to
        whatever of them outlived the leader (a ServerApp or ClientApp that ignored the SIGTERM)."""
        groups = _tree_groups(process.pid)
        if process.poll() is None:
            _signal_groups(groups, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_groups(groups | _tree_groups(process.pid), signal.SIGKILL)
        process.wait()

    def kill(self, process: subprocess.Popen) -> None:
        """Stop at once (as a crash would), the processes it started included."""
        _signal_groups(_tree_groups(process.pid), signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        for fh in self._logs:
            fh.close()

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def _tree_groups(pid: int) -> set[int]:
    """The process group ``pid`` leads and those of all its live descendants. Flower's SuperLink starts
    its executor in a session of its own, so a signal to the SuperLink's group alone misses the ServerApp
    that executor runs. Descendants are read from /proc (Linux); elsewhere only ``pid``'s group."""
    groups, children = {pid}, {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:  # /proc/PID/stat: "pid (name) state ppid pgrp ..."; the name may hold spaces
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                children.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[2])))
    todo = [pid]
    while todo:
        for child, group in children.get(todo.pop(), []):
            groups.add(group)
            todo.append(child)
    return groups


def _signal_groups(groups: set[int], sig: int) -> None:
    own = os.getpgrp()
    for group in groups - {0, 1, own}:  # never this process's own group
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class ServerTLS:
    """The SuperLink's TLS files (Flower's ``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-ca-certfile``)."""
    certfile: Path
    keyfile: Path
    ca_certfile: Path


@dataclass
class SiteTLS:
    """A SuperNode's side of TLS and authentication: the CA that signed the server's certificate
    (``--root-certificates``) and the site's private key (``--auth-supernode-private-key``)."""
    root_certificates: Path
    auth_key: Path


def superlink_args(home: Path, host: str, port: int, tls: ServerTLS | None = None) -> list[str]:
    """A SuperLink on host:port: plain HTTP, or TLS with SuperNode authentication (only registered keys join)."""
    security = (["--ssl-certfile", str(tls.certfile), "--ssl-keyfile", str(tls.keyfile),
                 "--ssl-ca-certfile", str(tls.ca_certfile), "--enable-supernode-auth"] if tls else ["--insecure"])
    return ["flower-superlink", *security, "--host", host, "--port", str(port), "--database", str(home / "state.db")]


def register_args(public_key: Path) -> list[str]:
    """Registering a site's public key with the SuperLink (through the ``flwr`` connection in FLWR_HOME)."""
    return ["flwr", "supernode", "register", str(public_key), CONNECTION]


def supernode_args(superlink: str, port: int, node_config: dict[str, str | None],
                   tls: SiteTLS | None = None) -> list[str]:
    """A SuperNode serving one site; ``node_config`` (its data, work folder, policy) goes to the ClientApp."""
    config = " ".join(f'{k}="{v}"' for k, v in node_config.items() if v not in (None, ""))
    security = (["--root-certificates", str(tls.root_certificates), "--auth-supernode-private-key",
                 str(tls.auth_key)] if tls else ["--insecure"])
    return ["flower-supernode", *security, "--superlink", superlink, "--port", str(port), "--node-config", config]


def submit_args(run_dir: Path) -> list[str]:
    """``flwr run`` of the ganforge app for the federation in ``run_dir``, following its log."""
    return ["flwr", "run", str(APP_DIR), CONNECTION, "--run-config", f'run-dir="{Path(run_dir).resolve()}"',
            "--stream"]
