"""Private Mosquitto, InfluxDB and VictoriaMetrics processes on free loopback ports, data
under one folder.

Used by ``tianwang demo``, the tests and the benchmarks, so that nothing depends on a
service someone started by hand (nor on the system's own broker on 1883).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
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
