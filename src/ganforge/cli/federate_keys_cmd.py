"""``ganforge federate keys`` (TLS and site keys), ``keygen`` (CKKS) and ``decrypt`` (a CKKS result)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GanforgeError

LOCAL_NAMES = ("localhost", "127.0.0.1")  # the server connects to its own SuperLink through one of these


def add_parsers(fsub) -> None:
    c = fsub.add_parser("keys", help="TLS certificates and site keys for a federation across machines",
                        description="Write DIR/ca.crt (every site), DIR/server.pem and DIR/server.key (the server), "
                                    "and DIR/sites/NAME.key (that site only) with DIR/sites/NAME.pub (the server). "
                                    "Private keys are created with mode 0600; nothing is overwritten.")
    c.add_argument("folder", metavar="DIR")
    c.add_argument("--hosts", metavar="NAMES", help="the server's hostnames and IP addresses the sites connect to, "
                   "comma-separated (localhost and 127.0.0.1 are added); makes a new CA and server certificate")
    c.add_argument("--sites", metavar="N|NAMES", help="site key pairs: a count (site-0, site-1, ...) or "
                   "comma-separated names")
    c.set_defaults(handler=run_keys)

    k = fsub.add_parser("keygen", help="a CKKS key pair for --he ckks",
                        description="Write DIR/site.key (give it to every site, never to the server; one leaked copy "
                                    "and the traffic decrypt every site's update) and DIR/server.key (the server).")
    k.add_argument("folder", metavar="DIR")
    k.set_defaults(handler=run_keygen)

    d = fsub.add_parser("decrypt", help="turn a CKKS federation's encrypted result into a run (needs the site key)")
    d.add_argument("run", metavar="RUN")
    d.add_argument("--key", required=True, metavar="FILE", help="site.key")
    d.add_argument("--out", required=True, metavar="RUN", help="where to write the decrypted run")
    d.set_defaults(handler=run_decrypt)


def site_names(text: str) -> list[str]:
    if text.isdigit():
        return [f"site-{k}" for k in range(int(text))]
    return [name.strip() for name in text.split(",") if name.strip()]


def run_keys(args: argparse.Namespace) -> int:
    from ..federated import credentials

    if not args.hosts and not args.sites:
        raise GanforgeError("federate keys needs --hosts (server certificate) and/or --sites (site keys)")
    folder = Path(args.folder)
    if args.hosts:
        hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
        paths = credentials.make_server_certificates(folder, hosts + [h for h in LOCAL_NAMES if h not in hosts])
        print(f"CA certificate (give it to every site): {paths['ca']}\nserver certificate and key (the server "
              f"only): {paths['cert']}, {paths['key']}\n(the CA's private key was discarded after signing)")
    if args.sites:
        pairs = credentials.make_site_keys(folder, site_names(args.sites))
        for private, public in pairs:
            print(f"site key: {private} (to that site only), public key: {public} (to the server)")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from ..federated.he import keygen

    site, server = keygen(args.folder)
    print(f"site key (secret, shared by every site: never to the server): {site}\nserver key: {server}")
    return 0


def run_decrypt(args: argparse.Namespace) -> int:
    from ..federated.decrypt import decrypt_run

    out = decrypt_run(Path(args.run), Path(args.key), Path(args.out))
    print(f"decrypted run: {out}; sample with: ganforge sample {out}")
    return 0
