"""Keys and certificates of a federation across machines (``ganforge federate keys``).

Transport security and site authentication are Flower's own: the SuperLink serves TLS with a
certificate signed by the federation's CA (``flower-superlink --ssl-certfile/--ssl-keyfile/
--ssl-ca-certfile``), each SuperNode checks it against the CA (``--root-certificates``), and with
``--enable-supernode-auth`` the SuperLink admits only SuperNodes whose public key was registered
with it (``flwr supernode register``); each SuperNode signs its requests with its private key
(``--auth-supernode-private-key``). This module only makes the files, with the ``cryptography``
package Flower depends on:

* ``ca.crt``: the federation's CA certificate (public: every site gets a copy). The CA's private key
  signs the server certificate and is then discarded: nobody can issue another certificate that
  the sites would trust. New server hostnames mean a new CA (run the command again in a new folder).
* ``server.pem`` and ``server.key``: the SuperLink's certificate for the given hostnames and IP
  addresses, and its private key (stays on the server).
* ``sites/NAME.key`` and ``sites/NAME.pub``: one EC P-384 key pair per site in OpenSSH format, the
  form Flower reads; the private key goes to that site only, the public keys to the server.

Private keys are created with mode 0600 (``os.open``), never readable by others, not even briefly.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import re
from pathlib import Path
from typing import Sequence

from ..errors import GanforgeError

CA_CERT, SERVER_CERT, SERVER_KEY = "ca.crt", "server.pem", "server.key"
SITES_DIR = "sites"
VALID_DAYS = 825  # the longest validity TLS clients accept for a server certificate
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def write_private(path: Path, data: bytes) -> None:
    """A new file readable by its owner only from the moment it exists (never overwrites)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise GanforgeError(f"{path} exists: keys are never overwritten (use a new folder)") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_public(path: Path, data: bytes) -> None:
    if path.exists():
        raise GanforgeError(f"{path} exists: keys are never overwritten (use a new folder)")
    path.write_bytes(data)


def _name(subject: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])


def _alt_names(hosts: Sequence[str]):
    from cryptography import x509

    names = []
    for host in hosts:
        host = host.strip()
        if not host:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if not names:
        raise GanforgeError("the server certificate needs at least one hostname or IP address (--hosts)")
    return names


def make_server_certificates(folder: str | Path, hosts: Sequence[str]) -> dict[str, Path]:
    """A new CA (its key discarded once it has signed) and the server's certificate for ``hosts``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ca": folder / CA_CERT, "cert": folder / SERVER_CERT, "key": folder / SERVER_KEY}
    for path in paths.values():
        if path.exists():
            raise GanforgeError(f"{path} exists: keys are never overwritten (use a new folder)")
    alt_names = _alt_names(hosts)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(_name("ganforge federation CA")).issuer_name(_name(
          "ganforge federation CA")).public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA384()))
    server_key = ec.generate_private_key(ec.SECP384R1())
    server = (x509.CertificateBuilder().subject_name(_name(str(hosts[0]))).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA384()))
    write_private(paths["key"], server_key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    _write_public(paths["cert"], server.public_bytes(serialization.Encoding.PEM))
    _write_public(paths["ca"], ca.public_bytes(serialization.Encoding.PEM))
    return paths


def make_site_keys(folder: str | Path, names: Sequence[str]) -> list[tuple[Path, Path]]:
    """One EC P-384 key pair per site name: (FOLDER/sites/NAME.key, FOLDER/sites/NAME.pub)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    sites = Path(folder) / SITES_DIR
    sites.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        if not SITE_NAME.match(name):
            raise GanforgeError(f"site name {name!r}: letters, digits, '.', '_' and '-' only (at most 64)")
        key = ec.generate_private_key(ec.SECP384R1())
        private, public = sites / f"{name}.key", sites / f"{name}.pub"
        write_private(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                 serialization.NoEncryption()))
        _write_public(public, key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                            serialization.PublicFormat.OpenSSH) + b"\n")
        out.append((private, public))
    return out


def site_public_keys(paths: Sequence[str | Path]) -> list[Path]:
    """The ``.pub`` files named: files, or every ``*.pub`` in a folder; a clear error when none."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(path.glob("*.pub"))
        elif path.is_file():
            found.append(path)
        else:
            raise GanforgeError(f"no such site key file or folder: {path}")
    if not found:
        raise GanforgeError(f"no site public key (*.pub) in {', '.join(map(str, paths))}")
    return found
