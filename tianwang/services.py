"""Private Mosquitto, InfluxDB, VictoriaMetrics and PostgreSQL processes on free loopback
ports, data under one folder.

Used by ``tianwang demo``, the tests and the benchmarks, so that nothing depends on a
service someone started by hand (nor on the system's own broker on 1883).
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

START_TIMEOUT_S = 30.0


class ServiceError(RuntimeError):
    """A service binary is missing or the process did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).exists()), None
    )
    if not found:
        raise ServiceError(f"{name} not found: install the Debian package (scripts/install.sh)")
    return found


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"port {port} not open after {START_TIMEOUT_S} s; see {log}")


class _Process:
    """A child process started by ``start`` and stopped (TERM, then KILL) by ``stop``."""

    name = "service"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / f"{self.name}.log"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> None:
        assert self.proc is not None
        _wait_port(self.port, self.proc, self.log)

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        command = self._command()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            self._ready()
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"{self.name}: {exc}") from exc
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Mosquitto(_Process):
    """A private Mosquitto broker; QoS 1 queues sized so slow subscribers lose nothing."""

    name = "mosquitto"

    def __init__(self, root: Path, extra_conf: str = "") -> None:
        super().__init__(root)
        # Appended to mosquitto.conf; a later line overrides an earlier one (e.g. a benchmark's
        # larger max_inflight_messages).
        self.extra_conf = extra_conf

    def _command(self) -> list[str]:
        persistence = self.root / "mosquitto-data"
        persistence.mkdir(parents=True, exist_ok=True)
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    # Started as root, Mosquitto would switch to user "mosquitto", which cannot
                    # write a private data folder (or reach it through a 0700 temp folder).
                    f"user {getpass.getuser()}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {persistence}/",
                    # FIELD_NOTES pitfall 1: the default 1000 drops messages for slow consumers.
                    "max_queued_messages 1000000",
                    "max_queued_bytes 0",
                    # Ingest acknowledges a message only after it is written: the in-flight
                    # window is bounded by its MQTT 5 receive maximum, not by the broker.
                    "max_inflight_messages 0",
                    "log_type error",
                    "log_type warning",
                    self.extra_conf,
                    "",
                ]
            )
        )
        return [_binary("mosquitto"), "-c", str(conf)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class ConfiguredMosquitto(_Process):
    """Mosquitto run with a configuration file written elsewhere (``tianwang broker-config``);
    ``port`` is one of its listeners, the one waited on for readiness."""

    name = "mosquitto"

    def __init__(self, root: Path, conf: Path, port: int) -> None:
        super().__init__(root)
        self.conf = conf
        self.port = port

    def _command(self) -> list[str]:
        return [_binary("mosquitto"), "-c", str(self.conf)]

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


class InfluxDB(_Process):
    """A private InfluxDB 1.x (Debian ``influxdb``), HTTP API on a free port."""

    name = "influxdb"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.rpc_port = free_port()

    def _command(self) -> list[str]:
        data = self.root / "influxdb-data"
        conf = self.root / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{data}/meta"
[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""
        )
        return [_binary("influxd"), "-config", str(conf)]

    def _ready(self) -> None:
        super()._ready()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServiceError(f"/ping did not answer; see {self.log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class VictoriaMetrics(_Process):
    """A private VictoriaMetrics (Debian ``victoria-metrics``): speaks the InfluxDB v2 write API
    (``/api/v2/write``) and stores each field as its own series ``<measurement>_<field>``.

    ``-retentionPeriod=100y`` keeps historic samples (FIELD_NOTES pitfall 6);
    ``-dedup.minScrapeInterval=1ms`` keeps one sample per series and millisecond, so a point
    written twice (a replay) is stored once, as in InfluxDB.
    """

    name = "victoria-metrics"

    def _command(self) -> list[str]:
        return [
            _binary("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.root / 'data'}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
        ]

    def _ready(self) -> None:
        super()._ready()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServiceError(f"/health did not answer; see {self.log}")

    def flush(self) -> None:
        """Make recent writes searchable now (VictoriaMetrics buffers them about a second)."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _postgres_binary(name: str) -> str:
    """Debian keeps the server binaries per major version, off PATH; the newest wins."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        reverse=True,
    )
    return str(versions[0]) if versions else _binary(name)


class PostgreSQL(_Process):
    """A private PostgreSQL cluster (Debian ``postgresql``): ``initdb`` into a new folder,
    then ``postgres`` on a free loopback port, TCP only, ``trust`` authentication for the
    superuser ``tianwang``; ``url`` names the ``postgres`` database, ``create_database`` more.

    PostgreSQL refuses to run as root. Started by root (CI, these machines), ``initdb`` and
    ``postgres`` run as the ``postgres`` system user that the Debian package creates, through
    ``setpriv`` (util-linux; it execs, so ``proc`` is the server itself), with the cluster in a
    folder of its own under the system temp folder (pytest's and ``mkdtemp``'s folders are
    0700, out of that user's reach) that ``stop`` removes; the log stays under ``root``.
    Started by anyone else, it runs as that user with the cluster under ``root``.

    ``durable=False`` (tests) turns fsync off; benchmarks pass ``durable=True``.
    """

    name = "postgresql"
    superuser = "tianwang"

    def __init__(self, root: Path, durable: bool = False) -> None:
        super().__init__(root)
        self.durable = durable
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.data: Path | None = None
        self._own_folder: Path | None = None

    def _as_user(self, command: list[str]) -> list[str]:
        if self.run_as is None:
            return command
        setpriv = _binary("setpriv")
        user = self.run_as
        return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *command]

    def _cluster_folder(self) -> Path:
        if self.run_as is None:
            return self.root / "cluster"
        try:
            account = pwd.getpwnam(self.run_as)
        except KeyError as exc:
            raise ServiceError(
                f"no user {self.run_as!r} to run PostgreSQL as (root cannot): install the "
                "Debian package postgresql (scripts/install.sh)"
            ) from exc
        folder = Path(tempfile.mkdtemp(prefix="tianwang-postgresql-"))
        os.chown(folder, account.pw_uid, account.pw_gid)
        self._own_folder = folder
        return folder / "cluster"

    def _command(self) -> list[str]:
        self.data = self._cluster_folder()
        initdb = [
            _postgres_binary("initdb"),
            f"--pgdata={self.data}",
            f"--username={self.superuser}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        with self.log.open("ab") as log:
            done = subprocess.run(
                self._as_user(initdb), stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            raise ServiceError(f"initdb exited with {done.returncode}; see {self.log}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP only: no socket in a shared folder
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        return self._as_user([_postgres_binary("postgres"), "-D", str(self.data), *options])

    def _ready(self) -> None:
        super()._ready()
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        isready = [_postgres_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"exited with {self.proc.returncode}; see {self.log}")
            ask = [*isready, "-U", self.superuser, "-d", "postgres", "-q"]
            if subprocess.run(ask, check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise ServiceError(f"pg_isready did not answer; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown; SIGTERM waits for clients
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)
            self._own_folder = None

    def url_for(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def create_database(self, database: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={self.superuser} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
        return self.url_for(database)
