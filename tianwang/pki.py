"""Test and development certificates for the broker's TLS listener, made with the openssl
command (Debian package ``openssl``): a CA, and a server certificate signed by it.

For a county's broker, use certificates from the county's own CA (docs/operations.md,
"Security"); these are for tests, the demo and a first installation on one machine. The CA
key is kept next to the certificate so that more server certificates can be signed later.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity browsers and most TLS stacks accept for a leaf


class PkiError(RuntimeError):
    """openssl is missing or refused to make a certificate."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """Files of a TLS listener: the CA that clients verify against, the server's
    certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise PkiError("openssl not found: install the Debian package (scripts/install.sh)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise PkiError(f"openssl {args[0]}: {done.stderr.decode(errors='replace').strip()}")


def _san(hosts: tuple[str, ...]) -> str:
    entries = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            entries.append(f"DNS:{host}")
        else:
            entries.append(f"IP:{host}")
    return ",".join(entries)


def issue_test_pki(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), name: str = "tianwang"
) -> ServerTls:
    """A new CA (``ca.crt``, ``ca.key``) and a server certificate for ``hosts``
    (``server.crt``, ``server.key``) in ``folder``; keys are P-256, mode 0600. If the folder
    already has them they are kept: nodes provisioned with the CA keep trusting the broker."""
    if not hosts:
        raise PkiError("a server certificate needs at least one host name or address")
    kept = ServerTls(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if all(p.exists() for p in (kept.ca, kept.cert, kept.key)):
        return kept
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", str(CA_DAYS), "-subj", f"/O={name}/CN={name} test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/O={name}/CN={hosts[0]}", cwd=folder)  # fmt: skip
    # Extensions a strict verifier wants in a leaf (Python 3.13's VERIFY_X509_STRICT among
    # them): SAN (the host is checked against it, not the CN), key usages, key identifiers.
    (folder / "server.ext").write_text(
        f"subjectAltName={_san(hosts)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", str(SERVER_DAYS), "-extfile", "server.ext",
             "-out", "server.crt", cwd=folder)  # fmt: skip
    for key in ("ca.key", "server.key"):
        os.chmod(folder / key, 0o600)
    return kept
