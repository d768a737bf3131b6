"""``ganforge federate server`` and ``site``: a federation across machines.

The server listens on 127.0.0.1 unless told otherwise. Any other address needs TLS (``--certificates
DIR`` or Flower's three file flags) with the sites' public keys (``--site-keys``: Flower's SuperNode
authentication, so only those sites join), or an explicit ``--insecure`` that says what it exposes.
A site connects with TLS (``--root-certificates``, ``--auth-key``) unless its server is on this machine
or it says ``--insecure``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import GanforgeError
from .federate_common import (add_round_options, check_he_key, federation_config, require_extras, run_config,
                              stop_on_signals, until_done)
from .train_cmd import add_model_options

CONTROL_API = ("the same port serves Flower's Control API, which in Flower's open-source distribution "
               "authenticates no one: whoever reaches it can submit apps that run on this server and on every site, "
               "and register site keys")


def add_parsers(fsub) -> None:
    v = fsub.add_parser("server", help="the server of a federation across machines",
                        description="Start a SuperLink, submit the federation and keep the global run in RUN. It "
                                    "listens on 127.0.0.1 unless --host says otherwise; other addresses need TLS "
                                    "and the sites' public keys (or --insecure).")
    target = v.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="RUN", help="the global run folder")
    target.add_argument("--resume", metavar="RUN", help="continue a federation from its last global round")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=9092)
    v.add_argument("--certificates", metavar="DIR", help="TLS from ganforge federate keys: DIR/ca.crt, "
                   "DIR/server.pem, DIR/server.key (and DIR/sites/*.pub as --site-keys unless given)")
    v.add_argument("--ssl-certfile", metavar="FILE", help="TLS: the server certificate (instead of --certificates)")
    v.add_argument("--ssl-keyfile", metavar="FILE", help="TLS: its private key")
    v.add_argument("--ssl-ca-certfile", metavar="FILE", help="TLS: the CA certificate that signed it")
    v.add_argument("--site-keys", nargs="+", metavar="PATH", help="public keys (.pub files or folders of them) of "
                   "the sites allowed to join; needs TLS")
    v.add_argument("--insecure", action="store_true", help="plain HTTP on a non-local address: anyone who reaches "
                   "the port can read the traffic, join as a site and submit apps (see docs/federated.md)")
    add_round_options(v)
    v.add_argument("--he-key", metavar="FILE", help="with --he ckks: the server's CKKS key (server.key)")
    add_model_options(v)
    v.set_defaults(handler=run_server)

    t = fsub.add_parser("site", help="one site of a federation: trains on its own images",
                        description="Start a SuperNode that trains on SOURCE whenever the server asks, within this "
                                    "site's terms; its images never leave this machine.")
    t.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's SuperLink")
    t.add_argument("--data", required=True, metavar="SOURCE")
    t.add_argument("--work", required=True, metavar="FOLDER", help="this site's own run and state")
    t.add_argument("--name", help="this site's name (default: the work folder's name); seeds its noise")
    t.add_argument("--root-certificates", metavar="FILE", help="the federation's CA certificate (ca.crt): TLS")
    t.add_argument("--auth-key", metavar="FILE", help="this site's private key (from ganforge federate keys)")
    t.add_argument("--insecure", action="store_true", help="plain HTTP to a server on another machine")
    t.add_argument("--he-key", metavar="FILE", help="the CKKS site key (federate keygen): encrypted rounds only")
    t.add_argument("--require", choices=["secure-aggregation"], help="refuse rounds without SecAgg+")
    t.add_argument("--dp-epsilon", type=float, metavar="E", help="refuse rounds without differential privacy or with "
                   "a budget larger than E")
    t.add_argument("--max-values", type=int, metavar="N", help="refuse models of more than N values (default 100M)")
    t.add_argument("--port", type=int, default=9094, help="local port of the SuperNode's ClientApp API")
    t.set_defaults(handler=run_site)


def is_local(host: str) -> bool:
    """Is ``host`` this machine only (a loopback address or localhost)?"""
    import ipaddress

    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_transport(args: argparse.Namespace):
    """(ServerTLS or None, the sites' public keys) from the server's flags, or a one-line error."""
    from ..federated.credentials import CA_CERT, SERVER_CERT, SERVER_KEY, SITES_DIR, site_public_keys
    from ..federated.processes import ServerTLS

    files = (args.ssl_certfile, args.ssl_keyfile, args.ssl_ca_certfile)
    if args.certificates and any(files):
        raise GanforgeError("give --certificates DIR or the three --ssl-* files, not both")
    if any(files) and not all(files):
        raise GanforgeError("TLS needs all three of --ssl-certfile, --ssl-keyfile and --ssl-ca-certfile")
    tls = None
    if args.certificates:
        folder = Path(args.certificates)
        tls = ServerTLS(folder / SERVER_CERT, folder / SERVER_KEY, folder / CA_CERT)
    elif all(files):
        tls = ServerTLS(*map(Path, files))
    if tls is None:
        if args.site_keys:
            raise GanforgeError("--site-keys needs TLS (--certificates DIR): Flower authenticates sites over TLS only")
        if not is_local(args.host) and not args.insecure:
            raise GanforgeError(f"listening on {args.host} needs TLS and the sites' keys (--certificates DIR, from "
                                "ganforge federate keys), or --insecure to accept plain HTTP knowingly")
        return None, []
    if args.insecure:
        raise GanforgeError("--insecure contradicts the TLS options given")
    for path in (tls.certfile, tls.keyfile, tls.ca_certfile):
        if not path.is_file():
            raise GanforgeError(f"TLS file not found: {path}")
    default = Path(args.certificates or "") / SITES_DIR
    keys = args.site_keys or ([str(default)] if args.certificates and default.is_dir() else None)
    if not keys:
        raise GanforgeError("TLS admits only registered sites: give their public keys with --site-keys")
    return tls, site_public_keys(keys)


def site_transport(args: argparse.Namespace):
    """The site's SiteTLS, or None for plain HTTP (a local server, or --insecure), or a one-line error."""
    from ..federated.processes import SiteTLS

    if args.root_certificates or args.auth_key:
        if args.insecure:
            raise GanforgeError("--insecure contradicts --root-certificates and --auth-key")
        if not (args.root_certificates and args.auth_key):
            raise GanforgeError("TLS needs both --root-certificates ca.crt and --auth-key sites/NAME.key")
        for path in (args.root_certificates, args.auth_key):
            if not Path(path).is_file():
                raise GanforgeError(f"file not found: {path}")
        return SiteTLS(Path(args.root_certificates).resolve(), Path(args.auth_key).resolve())
    host = args.server.rsplit(":", 1)[0]
    if not is_local(host) and not args.insecure:
        raise GanforgeError(f"connecting to {host} needs TLS: --root-certificates ca.crt --auth-key sites/NAME.key "
                            "(ganforge federate keys), or --insecure for plain HTTP")
    return None


def run_server(args: argparse.Namespace) -> int:
    stop_on_signals()
    from ..federated import launch, processes

    require_extras(args.he)
    tls, site_keys = server_transport(args)
    if args.resume:
        run_dir = Path(args.resume)
        launch.resume_run(run_dir, args.rounds)
    else:
        run_dir = Path(args.out)
        fed = federation_config(args)
        if fed.he and not args.he_key:
            raise GanforgeError("--he ckks needs --he-key server.key (ganforge federate keygen)")
        if fed.he:
            check_he_key(args.he_key, secret=False)
            fed.he_context = str(Path(args.he_key).resolve())
        cfg = run_config(args, None)
        cfg.data.source = "(the sites' images)"
        launch.prepare_run(run_dir, cfg, fed)
    where = f"{args.host}:{args.port}"
    if tls:
        print(f"SuperLink on {where} with TLS; {len(site_keys)} site key(s) registered, no other site can join. "
              f"Note: {CONTROL_API}; let only the sites reach this port (firewall, VPN).")
    elif not is_local(args.host):
        print(f"WARNING: SuperLink on {where} over plain HTTP (--insecure): anyone who reaches this port can read "
              f"and alter the rounds' traffic and join as a site, and {CONTROL_API}.", file=sys.stderr)
    print(f"start each site with: ganforge federate site --server <this machine>:{args.port} --data SOURCE "
          f"--work FOLDER" + (" --root-certificates ca.crt --auth-key sites/NAME.key" if tls else ""))

    def serve() -> None:
        with processes.ProcessGroup() as group:
            launch.start_superlink(group, run_dir, args.host, args.port, tls, site_keys)
            launch.submit(group, run_dir)

    return until_done(run_dir, "server", serve)


def run_site(args: argparse.Namespace) -> int:
    stop_on_signals()
    from ..federated import launch, processes
    from ..federated.site import Site
    from ..federated.site_policy import DEFAULT_MAX_VALUES, SitePolicy

    require_extras(args.he_key)
    tls = site_transport(args)
    if args.he_key:
        check_he_key(args.he_key, secret=True)
    policy = SitePolicy(require_secure=args.require == "secure-aggregation", dp_epsilon=args.dp_epsilon,
                        max_values=args.max_values or DEFAULT_MAX_VALUES)
    site = launch.SiteSpec(args.data, Path(args.work), args.name,
                           str(Path(args.he_key).resolve()) if args.he_key else None,
                           policy=policy.node_config(), tls=tls)
    described = Site(args.data, args.work, args.name).describe()  # a bad path or unreadable data fails here, now
    print(f"site {site.name or Path(args.work).resolve().name}: {described['images']:,} images from {args.data}, "
          f"serving {args.server}{' over TLS' if tls else ''} (Ctrl-C stops)")
    with processes.ProcessGroup() as group:
        node = launch.start_site(group, site, args.server, args.port)
        try:
            return node.wait()
        except KeyboardInterrupt:
            return 130
