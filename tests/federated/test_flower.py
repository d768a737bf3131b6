"""Federations through Flower's deployment runtime on localhost: SuperLinks, SuperNodes as site processes,
runs submitted with ``flwr run``.

Most of a federation's time here is spent starting processes (every Flower message starts a ClientApp that
imports torch) and waiting on Flower's polls, so the module's scenarios run side by side: the first test to
ask for ``scenarios`` starts them all (one thread each, each with its own SuperLink, sites and folders) and
every test checks the outcome of its own. Ports come from the OS and every file lies under pytest's
temporary folders, so the module also runs under pytest-xdist (each worker that runs one of its tests starts
the scenarios; ``--dist loadfile`` keeps them in one worker)."""
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from helpers import tiny_config  # noqa: E402
from ganforge.cli.main import main  # noqa: E402
from ganforge.federated import launch, processes  # noqa: E402
from ganforge.federated.partition import write_partitions  # noqa: E402
from ganforge.federated.server import FederationConfig, GlobalRun  # noqa: E402

ROUND_TIMEOUT = 120.0  # a generous limit where no site is meant to fail
# The killed site's round waits this long for it (one round, spent beside the other scenarios). It must also
# cover the live sites' answers and the three sites' data descriptions: every answer starts a ClientApp that
# imports torch, which took over 40 s beside the other scenarios and another test run on a loaded 2-core machine.
FAULT_TIMEOUT = 60.0
HAS_TENSEAL = importlib.util.find_spec("tenseal") is not None


# ---------------------------------------------------------------------------- processes


def start_link(group, folder: Path, sites) -> tuple[str, list]:
    """A SuperLink in ``folder`` and a SuperNode for each of ``sites``, all connected: (its address, the nodes)."""
    port = processes.free_port()
    launch.start_superlink(group, folder, "127.0.0.1", port)
    nodes = [launch.start_site(group, site, f"127.0.0.1:{port}") for site in sites]
    for site, node in zip(sites, nodes):
        wait_for_log(Path(site.work) / "logs" / "supernode.log", "SuperNode ID", node)
    return f"127.0.0.1:{port}", nodes


def wait_for_log(log: Path, text: str, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (log.is_file() and text in log.read_text(errors="replace")):
        assert process.poll() is None, f"{log} ended without {text!r}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {log}"
        time.sleep(0.2)


def federation(run_dir: Path, data: Path, address: str | None, rounds=1, timeout=ROUND_TIMEOUT, **options) -> Path:
    """A federated run folder for a tiny DCGAN on ``data``, to be submitted to the SuperLink at ``address``
    (None: its own, started in the run folder, which writes the connection)."""
    launch.prepare_run(run_dir, tiny_config(data), FederationConfig(rounds=rounds, local_steps=2, min_sites=2,
                                                                    round_timeout=timeout, **options))
    if address is not None:
        processes.write_connection(run_dir / ".flower", address)
    return run_dir


def submit(group, run_dir: Path):
    return group.start(processes.submit_args(run_dir), processes.flower_env(run_dir / ".flower"),
                       log=run_dir / "logs" / "server.log")


def finished(process, run_dir: Path, timeout=300) -> None:
    assert process.wait(timeout) == 0, (run_dir / "logs" / "server.log").read_text()[-3000:]


def rounds_logged(run_dir):
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def wait_for_round(run_dir, n, process, timeout=300):
    deadline = time.monotonic() + timeout
    while len(rounds_logged(run_dir)) < n:
        assert process.poll() is None, (run_dir / "logs" / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"round {n} not reached"
        time.sleep(0.2)


def federation_processes(folder: Path) -> list[int]:
    """Live processes whose FLWR_HOME lies under ``folder`` (every Flower process of a federation there,
    the ServerApp and ClientApps they start included: they inherit it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        homes = [e[len(b"FLWR_HOME="):].decode() for e in environ if e.startswith(b"FLWR_HOME=")]
        if state != "Z" and homes and homes[0].startswith(str(folder)):
            found.append(int(proc.name))
    return found


# ---------------------------------------------------------------------------- scenarios


def three_rounds(root: Path, data: Path, sites) -> dict:
    """A plain and a SecAgg+ federation on one SuperLink and its two sites, and a CKKS federation on another
    whose two sites hold the CKKS key (a site holding it takes encrypted rounds only); all three submitted
    at once, one round each, same configuration, data and seeds. The CKKS sites have the same names and data
    as the plain ones, so they compute the same updates."""
    with processes.ProcessGroup() as group:
        plain_address, _ = start_link(group, root / "link", sites)
        runs = {"plain": federation(root / "plain", data, plain_address),
                "secure": federation(root / "secure", data, plain_address, secure_aggregation=True, shares=1.0,
                                     threshold=0.5)}
        if HAS_TENSEAL:
            from ganforge.federated import he

            keys = root / "keys"
            he.keygen(keys)
            ckks_sites = [dataclasses.replace(s, work=root / "ckks-sites" / s.name, he_key=str(keys / he.SITE_KEY))
                          for s in sites]
            ckks_address, _ = start_link(group, root / "ckks-link", ckks_sites)
            runs["ckks"] = federation(root / "ckks", data, ckks_address, he="ckks",
                                      he_context=str(keys / he.SERVER_KEY))
        submitted = {name: submit(group, run_dir) for name, run_dir in runs.items()}
        for name, process in submitted.items():
            finished(process, runs[name])
    return runs


def faults(root: Path, data: Path, sites) -> dict:
    """Two rounds with three sites. In the first, the third site is killed (as a crash: SuperNode and
    ClientApp) once it has described its data and received the round's instructions. Once that round is
    logged, the SuperLink and its ServerApp are killed (the server machine fails) and the other sites
    stopped; the federation is then resumed with the two live sites, as ``federate simulate --resume`` does
    (launch.simulate). -> what the killed site's log showed, and the rounds logged before and after."""
    run_dir = federation(root / "faults", data, None, rounds=2, timeout=FAULT_TIMEOUT)
    with processes.ProcessGroup() as group:
        port = processes.free_port()
        superlink = launch.start_superlink(group, run_dir, "127.0.0.1", port)
        nodes = [launch.start_site(group, site, f"127.0.0.1:{port}") for site in sites]
        process = submit(group, run_dir)
        log = Path(sites[2].work) / "logs" / "supernode.log"
        wait_for_log(log, "Receiving: train message", process, timeout=300)
        group.kill(nodes[2])
        wait_for_round(run_dir, 1, process)
        group.kill(superlink)  # the server machine fails: SuperLink and the ServerApp it runs
    text = log.read_text()
    first = {"described": "Sending: get_properties message" in text, "trained": "Sending: train message" in text,
             "rounds": rounds_logged(run_dir), "global": GlobalRun.resume(run_dir).round}
    result = launch.simulate(run_dir, sites[:2])
    return {"first": first, "result": result, "rounds": rounds_logged(run_dir)}


def ctrl_c(root: Path, data: Path) -> dict:
    """``ganforge federate simulate`` interrupted (SIGINT, as Ctrl-C) once its first round is logged."""
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / "interrupted"
    tiny = [x for opt in ["model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch_size=8"]
            for x in ("--set", opt)]
    command = subprocess.Popen([sys.executable, "-m", "ganforge", "federate", "simulate", "--data", str(data),
                                "--sites", "2", "--rounds", "50", "--local-steps", "2", "--out", str(run_dir),
                                *tiny], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not rounds_logged(run_dir):
            assert command.poll() is None, command.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no round logged"
            time.sleep(0.2)
        running = federation_processes(root)
        command.send_signal(signal.SIGINT)
        code = command.wait(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
    deadline = time.monotonic() + 15  # SIGKILLed processes take a moment to be gone
    while federation_processes(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"running": running, "code": code, "stderr": command.stderr.read().decode(),
            "left": federation_processes(root)}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Every scenario of the module started side by side: {name: Future of what it returns}."""
    root = tmp_path_factory.mktemp("federations")
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 2
    images = (rng.random((48, 14, 14)) * 100 + labels[:, None, None] * 120).astype(np.uint8)
    data = root / "all.npz"
    np.savez(data, images=images, labels=labels.astype(np.uint8))
    files = write_partitions(str(data), root / "data", 4, "iid")  # 12 images each; site-1 takes a fourth share:
    merged = [np.load(files[k]) for k in (1, 3)]  # 12 and 24 images weigh 12 and 16 (the cap: 2 steps x 8)
    np.savez(files[1], **{key: np.concatenate([m[key] for m in merged]) for key in merged[0].files})

    def sites(folder, n=2):  # one thread per site's torch: the scenarios share the machine's cores
        return [launch.SiteSpec(str(f), root / folder / f"site-{k}", f"site-{k}", threads=1)
                for k, f in enumerate(files[:n])]

    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the ServerApps' torch (they inherit the SuperLink's environment)
    pool = ThreadPoolExecutor(3)
    try:
        yield {"rounds": pool.submit(three_rounds, root / "rounds", data, sites("rounds")),
               "faults": pool.submit(faults, root / "faults", data, sites("faults", 3)),
               "ctrl-c": pool.submit(ctrl_c, root / "ctrl-c", data)}
    finally:
        pool.shutdown(wait=True)
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old


# ---------------------------------------------------------------------------- tests


def test_plain_secure_and_encrypted_rounds(scenarios, tmp_path):
    """A plain federation writes a run that sample and eval accept. One round each, same configuration
    and seeds: the sites compute the same updates, so the SecAgg+ and CKKS aggregates differ from the
    plain one only by SecAgg+'s quantisation and CKKS's rounding; the sites hold 12 and 24 images, so all
    three weigh them alike (12 and 16, the cap)."""
    runs = scenarios["rounds"].result()
    plain, secure = runs["plain"], runs["secure"]
    [record] = rounds_logged(plain)
    assert record["round"] == 1 and record["sites"] == 2 and record["failures"] == 0
    assert record["images"] == 2 * 2 * 8  # sites x local steps x batch
    assert record["bytes_up"] > 0 and record["bytes_down"] > 0
    assert main(["sample", str(plain), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    data = plain.parent.parent / "all.npz"
    assert main(["eval", str(plain), "--real", data.as_posix(), "--n", "16", "--metrics", "pr",
                 "--extractor", "domain", "--no-progress", "--json", str(tmp_path / "e.json")]) == 0
    assert "precision_domain" in json.loads((tmp_path / "e.json").read_text())

    [secured_record] = rounds_logged(secure)
    assert secured_record["sites"] == 2 and secured_record["failures"] == 0
    reference = GlobalRun.resume(plain).weights()
    secured = GlobalRun.resume(secure).weights()
    worst = max(float(np.abs(a - b).max()) for a, b in zip(secured, reference))
    assert 0 < worst < 1e-5  # SecAgg+'s quantisation (2 / 2**22 per level), nothing else

    pytest.importorskip("tenseal")
    from ganforge.federated import he
    from ganforge.federated.decrypt import decrypt_run

    encrypted = runs["ckks"]
    [encrypted_record] = rounds_logged(encrypted)
    assert encrypted_record["sites"] == 2 and encrypted_record["failures"] == 0
    assert not (encrypted / "samples" / "step-00000002.png").exists()  # the server never held the weights
    keys = encrypted.parent / "keys"
    decrypted_run = decrypt_run(encrypted, keys / he.SITE_KEY, tmp_path / "ckks-decrypted")
    decrypted = GlobalRun.resume(decrypted_run).weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(decrypted, reference)) < 1e-5
    assert encrypted_record["bytes_up"] > 5 * record["bytes_up"]  # ~30 B per float


def test_a_killed_site_does_not_stop_the_round(scenarios):
    """The third site answered the server and got the round's instructions, then died: the round goes on
    with the two others after its timeout, the dead site counted as a failure."""
    first = scenarios["faults"].result()["first"]
    assert first["described"] and not first["trained"]
    [record] = first["rounds"]
    assert record["round"] == 1 and record["sites"] == 2 and record["failures"] == 1


def test_a_killed_server_resumes_from_the_last_global_round(scenarios):
    outcome = scenarios["faults"].result()
    assert (len(outcome["first"]["rounds"]), outcome["first"]["global"]) == (1, 1)
    assert outcome["result"]["round"] == 2 and [r["round"] for r in outcome["rounds"]] == [1, 2]
    assert outcome["rounds"][1]["sites"] == 2 and outcome["rounds"][1]["failures"] == 0


def test_ctrl_c_stops_the_whole_simulation(scenarios):
    outcome = scenarios["ctrl-c"].result()
    assert len(outcome["running"]) >= 4  # SuperLink, two SuperNodes, the ServerApp, ... were there to stop
    assert outcome["code"] == 130, outcome["stderr"][-3000:]
    assert "--resume" in outcome["stderr"]
    assert outcome["left"] == []
