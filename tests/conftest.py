"""Fixtures: every test that needs a broker or a database starts its own, on a free
loopback port, with its data in the test's temporary folder, and stops it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import edge._agent
import ingest._service
from tianwang.registry import Registry, load_registry
from tianwang.services import InfluxDB, Mosquitto, PostgreSQL, VictoriaMetrics

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect and retry delays shrunk, so fault tests wait tenths of seconds, not tens."""
    monkeypatch.setattr(edge._agent, "RECONNECT_MIN_S", 0.05)
    monkeypatch.setattr(edge._agent, "RECONNECT_MAX_S", 0.2)
    monkeypatch.setattr(ingest._service, "RETRY_MIN_S", 0.05)
    monkeypatch.setattr(ingest._service, "RETRY_MAX_S", 0.2)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    with InfluxDB(tmp_path / "influxdb") as database:
        yield database


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A server speaking the InfluxDB v2 write API (Debian has no InfluxDB 2)."""
    with VictoriaMetrics(tmp_path / "victoria-metrics") as database:
        yield database


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgreSQL]:
    """A private PostgreSQL cluster (as user postgres when the tests run as root)."""
    with PostgreSQL(tmp_path / "postgresql") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def county() -> Registry:
    return load_registry(EXAMPLES / "county.yaml")
