"""Mosquitto security configuration generated from the grid file: users, ACL, credentials.

Every node, officer and service gets a Mosquitto user of its own with a random password.
The ACL pins each node to its own topics (docs/protocol.md): it may write only its
``data``, ``status``, ``health`` and ``cfg_ack`` and read only its ``cfg``; an officer may
read only their alert topic; ingest reads ``tw/v1/#``; the grid service writes the alert
topics; the operator account writes and reads the ``cfg`` topics and reads ``cfg_ack``.
Mosquitto denies whatever the ACL does not grant.

Passwords are hashed with Mosquitto's own ``mosquitto_passwd -U`` (PBKDF2-SHA512), fed a
file rather than the command line, so that no password shows in a process list. Plain
passwords are kept only in ``credentials/<user>.password`` (mode 0600) for provisioning:
an edge agent reads its file as ``broker.password_file``. Regenerating keeps every existing
password; ``rotate`` gives the named users new ones. Mosquitto rereads the password and ACL
files on SIGHUP (``reload_broker``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tianwang.pki import ServerTls
from tianwang.registry import Registry
from tianwang.topics import PREFIX, alert_topic

INGEST_USER = "tianwang-ingest"
GRID_USER = "tianwang-grid"
OPERATOR_USER = "tianwang-operator"
NODE_WRITES = ("data", "status", "health", "cfg_ack")
NODE_READS = ("cfg",)
PASSWORD_BYTES = 24  # 32 URL-safe characters
# A bound on what one packet may make the broker hold: a data message has at most 1000
# readings (about 180 kB), a cfg at most 64 KiB (edge/_remote.py).
MAX_PACKET_BYTES = 1 << 20


class BrokerConfigError(ValueError):
    """The grid file cannot be turned into a broker configuration (a user name clash), or
    mosquitto_passwd is missing or failed."""


@dataclass(frozen=True, slots=True)
class BrokerUser:
    name: str
    role: str  # node, officer, ingest, grid or operator
    write: tuple[str, ...]
    read: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Listener:
    """``host:port``; TLS when ``tls`` is given."""

    host: str
    port: int
    tls: ServerTls | None = None

    @classmethod
    def parse(cls, text: str, tls: ServerTls | None = None) -> Listener:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a listener is HOST:PORT (port 1-65535), got {text!r}")
        return cls(host, int(port), tls)


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    conf: Path
    passwd: Path
    acl: Path
    credentials: Path  # folder of <user>.password
    users: tuple[BrokerUser, ...]
    rotated: tuple[str, ...]
    created: tuple[str, ...]
    removed: tuple[str, ...]

    def password_file(self, user: str) -> Path:
        return credential_path(self.credentials, user)

    def summary(self) -> dict[str, object]:
        """What was written, for the command's output: no password, no hash."""
        return {"conf": str(self.conf), "users": len(self.users), "created": len(self.created),
                "rotated": list(self.rotated), "removed": list(self.removed)}  # fmt: skip


def broker_users(registry: Registry) -> tuple[BrokerUser, ...]:
    """The users of a county's broker and what each may write and read."""
    county = f"{PREFIX}/{registry.county}"
    officer_topics = {o.id: o.mqtt or alert_topic(registry.county, o.id)
                      for o in registry.officers.values()}  # fmt: skip
    for officer_id, topic in officer_topics.items():
        if "+" in topic or "#" in topic:
            raise BrokerConfigError(f"officer {officer_id!r}: mqtt topic {topic!r} has a "
                                    "wildcard; it must name one topic")  # fmt: skip
    custom = sorted({o.mqtt for o in registry.officers.values() if o.mqtt})
    users = [
        BrokerUser(INGEST_USER, "ingest", (), (f"{PREFIX}/#",)),
        BrokerUser(GRID_USER, "grid", (alert_topic(registry.county, "+"), *custom), ()),
        BrokerUser(OPERATOR_USER, "operator", (f"{county}/+/+/+/cfg",),
                   (f"{county}/+/+/+/cfg", f"{county}/+/+/+/cfg_ack")),
    ]  # fmt: skip
    for node in registry.nodes.values():
        users.append(BrokerUser(node.id, "node", tuple(node.place.topic(k) for k in NODE_WRITES),
                                tuple(node.place.topic(k) for k in NODE_READS)))  # fmt: skip
    for officer_id, topic in officer_topics.items():
        users.append(BrokerUser(officer_id, "officer", (), (topic,)))
    seen: dict[str, str] = {}
    for user in users:
        if user.name in seen:
            raise BrokerConfigError(f"broker user {user.name!r} would be both the "
                                    f"{seen[user.name]} and the {user.role} of that id: give "
                                    "one of them another id")  # fmt: skip
        seen[user.name] = user.role
    return tuple(users)


def acl_text(users: Iterable[BrokerUser]) -> str:
    """A Mosquitto ``acl_file``: a ``user`` block per user; nothing else is granted."""
    lines = ["# Generated by tianwang broker-config; regenerate rather than edit.", ""]
    for user in users:
        lines.append(f"# {user.role}")
        lines.append(f"user {user.name}")
        lines += [f"topic write {t}" for t in user.write]
        lines += [f"topic read {t}" for t in user.read]
        lines.append("")
    return "\n".join(lines)


def mosquitto_conf(
    passwd: Path,
    acl: Path,
    listeners: Iterable[Listener],
    *,
    run_as: str | None = None,
    data_dir: Path | None = None,
) -> str:
    lines = [
        "# Generated by tianwang broker-config; regenerate rather than edit.",
        # one password file and ACL for every listener
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        f"max_packet_size {MAX_PACKET_BYTES}",
        # What ingest needs (docs/operations.md, "Ingest and the rest on a server"): its
        # receive maximum bounds the in-flight window, and queued QoS 1 messages are kept.
        "max_inflight_messages 0",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    if run_as:
        lines.append(f"user {run_as}")
    if data_dir is not None:
        lines += ["persistence true", f"persistence_location {data_dir}/"]
    for listener in listeners:
        lines.append(f"listener {listener.port} {listener.host}")
        if listener.tls is not None:
            lines += [
                f"cafile {listener.tls.ca}",
                f"certfile {listener.tls.cert}",
                f"keyfile {listener.tls.key}",
                "tls_version tlsv1.2",  # the lowest version accepted
            ]
    return "\n".join(lines) + "\n"


def credential_path(folder: Path, user: str) -> Path:
    return folder / f"{user}.password"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_password_file(passwords: dict[str, str], dest: Path) -> None:
    """Write ``dest`` as a Mosquitto password file of ``passwords`` (user -> plain)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerConfigError("mosquitto_passwd not found: install the Debian package "
                                "mosquitto (scripts/install.sh)")  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as plain:
            plain.writelines(f"{user}:{password}\n" for user, password in passwords.items())
        done = subprocess.run([tool, "-U", tmp], capture_output=True, check=False)
        if done.returncode != 0:
            # its message names the file, never a password
            raise BrokerConfigError(f"mosquitto_passwd -U failed: {done.stderr.decode().strip()}")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


_Credentials = tuple[dict[str, str], list[str], list[str], list[str]]


def _credentials(
    folder: Path, users: tuple[BrokerUser, ...], rotate: frozenset[str]
) -> _Credentials:
    """Each user's password (kept, or new if missing or rotated); the users created and
    rotated, and the credential files removed for users no longer in the grid file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    created, rotated = [], []
    for user in users:
        path = credential_path(folder, user.name)
        if path.exists() and user.name not in rotate:
            passwords[user.name] = path.read_text("utf-8").strip()
            continue
        (rotated if path.exists() else created).append(user.name)
        passwords[user.name] = secrets.token_urlsafe(PASSWORD_BYTES)
        _write_private(path, passwords[user.name] + "\n")
    names = {u.name for u in users}
    removed = sorted(p.stem for p in folder.glob("*.password") if p.stem not in names)
    for name in removed:
        credential_path(folder, name).unlink()
    return passwords, created, rotated, removed


def write_broker_config(
    registry: Registry,
    out: Path,
    listeners: Iterable[Listener],
    *,
    rotate: Iterable[str] = (),
    run_as: str | None = None,
    data_dir: Path | None = None,
) -> BrokerFiles:
    """Write ``mosquitto.conf``, ``passwd``, ``acl`` and ``credentials/`` into ``out``."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    users = broker_users(registry)
    rotate = frozenset(rotate)
    unknown = rotate - {u.name for u in users}
    if unknown:
        raise BrokerConfigError(f"cannot rotate {sorted(unknown)}: no such broker user")
    folder = out / "credentials"
    passwords, created, rotated, removed = _credentials(folder, users, rotate)
    passwd, acl, conf = out / "passwd", out / "acl", out / "mosquitto.conf"
    hash_password_file(passwords, passwd)
    acl.write_text(acl_text(users), "utf-8")
    data = data_dir.resolve() if data_dir else None
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)  # Mosquitto does not create it
    conf.write_text(mosquitto_conf(passwd, acl, listeners, run_as=run_as, data_dir=data), "utf-8")
    return BrokerFiles(conf, passwd, acl, folder, users, tuple(rotated), tuple(created),
                       tuple(removed))  # fmt: skip


def reload_broker(pid: int) -> None:
    """Make a running Mosquitto reread its password file and ACL (SIGHUP)."""
    os.kill(pid, signal.SIGHUP)
