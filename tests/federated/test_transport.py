"""Transport security and site authentication, on real Flower processes: a SuperLink serving TLS with SuperNode
authentication admits a registered site, refuses a site with an unknown key, and cannot be reached over plain
HTTP. Then the command-line rules: no plain HTTP beyond localhost unless asked for.

One SuperLink serves the module; the refused SuperNodes give up after one retry."""
import argparse
import http.client
import ssl
import stat
import time

import pytest

pytest.importorskip("flwr")

from ganforge.cli.federate_remote_cmd import server_transport, site_transport  # noqa: E402
from ganforge.cli.main import build_parser  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.federated import credentials, launch, processes  # noqa: E402

JOIN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def tls_link(tmp_path_factory):
    """(group, address, keys folder, root) with a TLS SuperLink that registered the keys of sites a and c."""
    root = tmp_path_factory.mktemp("tls")
    keys = root / "keys"
    paths = credentials.make_server_certificates(keys, ["localhost", "127.0.0.1"])
    credentials.make_site_keys(keys, ["a", "b", "c"])
    tls = processes.ServerTLS(paths["cert"], paths["key"], paths["ca"])
    port = processes.free_port()
    group = processes.ProcessGroup()
    try:
        registered = [keys / "sites" / "a.pub", keys / "sites" / "c.pub"]
        launch.start_superlink(group, root / "server", "127.0.0.1", port, tls, registered)
        yield group, f"127.0.0.1:{port}", keys, root
    finally:
        group.stop_all()


def node(link, name, tls=True):
    group, address, keys, root = link
    site = launch.SiteSpec(str(root / "nodata.npz"), root / name, name,
                           tls=processes.SiteTLS(keys / "ca.crt", keys / "sites" / f"{name}.key") if tls else None)
    process = launch.start_site(group, site, address, max_retries=1)
    return process, root / name / "logs" / "supernode.log"


def wait_for(log, text, process, timeout=JOIN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return text in log.read_text(errors="replace")
        time.sleep(0.2)
    return False


def test_only_registered_sites_join_over_tls(tls_link):
    known, known_log = node(tls_link, "a")
    unknown, unknown_log = node(tls_link, "b")  # a key the server was never given
    assert wait_for(known_log, "SuperNode ID", known), known_log.read_text()[-2000:]
    assert unknown.wait(JOIN_TIMEOUT) != 0
    assert "SuperNode ID" not in unknown_log.read_text()
    assert known.poll() is None  # the registered site is still connected


def test_a_plain_http_client_cannot_reach_a_tls_server(tls_link):
    group, address, keys, _ = tls_link
    host, port = address.split(":")
    plain = http.client.HTTPConnection(host, int(port), timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/health")
        plain.getresponse()
    secure = http.client.HTTPSConnection("localhost", int(port), timeout=5,
                                         context=ssl.create_default_context(cafile=str(keys / "ca.crt")))
    secure.request("GET", "/health")
    assert secure.getresponse().status < 500  # the same port answers over TLS (the check above is not vacuous)
    insecure, log = node(tls_link, "c", tls=False)  # a registered site that forgot TLS
    assert insecure.wait(JOIN_TIMEOUT) != 0
    assert "SuperNode ID" not in log.read_text()


def test_private_keys_are_created_owner_only(tmp_path):
    paths = credentials.make_server_certificates(tmp_path, ["server.example.org", "10.0.0.5"])
    [(private, public)] = credentials.make_site_keys(tmp_path, ["site-0"])
    assert stat.S_IMODE(paths["key"].stat().st_mode) == 0o600 and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("ecdsa-sha2-nistp384 ")  # the form flwr supernode register reads
    with pytest.raises(GanforgeError, match="never overwritten"):
        credentials.make_site_keys(tmp_path, ["site-0"])
    assert not (tmp_path / "ca.key").exists()  # the CA's key is discarded once it has signed


def server_args(*options):
    return build_parser().parse_args(["federate", "server", "--out", "run", *options])


def test_the_server_listens_beyond_localhost_only_with_tls_or_insecure(tmp_path):
    assert server_args().host == "127.0.0.1"
    assert server_transport(server_args()) == (None, [])
    with pytest.raises(GanforgeError, match="needs TLS"):
        server_transport(server_args("--host", "0.0.0.0"))
    assert server_transport(server_args("--host", "0.0.0.0", "--insecure")) == (None, [])
    with pytest.raises(GanforgeError, match="all three"):
        server_transport(server_args("--host", "0.0.0.0", "--ssl-certfile", "x.pem"))
    credentials.make_server_certificates(tmp_path, ["localhost"])
    with pytest.raises(GanforgeError, match="site-keys|public key"):
        server_transport(server_args("--host", "0.0.0.0", "--certificates", str(tmp_path)))
    credentials.make_site_keys(tmp_path, ["s1", "s2"])
    tls, keys = server_transport(server_args("--host", "0.0.0.0", "--certificates", str(tmp_path)))
    assert tls is not None and sorted(k.name for k in keys) == ["s1.pub", "s2.pub"]
    with pytest.raises(GanforgeError, match="contradicts"):
        server_transport(server_args("--host", "0.0.0.0", "--certificates", str(tmp_path), "--insecure"))


def test_a_site_connects_to_another_machine_only_with_tls_or_insecure():
    def site(*options):
        return build_parser().parse_args(["federate", "site", "--data", "x", "--work", "w", *options])

    assert site_transport(site("--server", "127.0.0.1:9092")) is None
    with pytest.raises(GanforgeError, match="needs TLS"):
        site_transport(site("--server", "server.example.org:9092"))
    assert site_transport(site("--server", "server.example.org:9092", "--insecure")) is None
    with pytest.raises(GanforgeError, match="both"):
        site_transport(site("--server", "server.example.org:9092", "--root-certificates", "ca.crt"))


def test_insecure_server_says_what_it_exposes(capsys, monkeypatch, tmp_path):
    from ganforge.cli import federate_remote_cmd
    from ganforge.federated import launch as launch_module

    monkeypatch.setattr(federate_remote_cmd, "stop_on_signals", lambda: None)  # pytest keeps its own handlers
    monkeypatch.setattr(launch_module, "start_superlink", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    args = server_args("--host", "0.0.0.0", "--insecure", "--out", str(tmp_path / "run"))
    assert isinstance(args, argparse.Namespace)
    assert federate_remote_cmd.run_server(args) == 130
    err = capsys.readouterr().err
    assert "plain HTTP" in err and "submit apps that run on this server and on every site" in err
