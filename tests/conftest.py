"""Fixtures: every test that needs a broker or a database starts its own, on a free
loopback port, with its data in the test's temporary folder, and stops it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tianwang.registry import Registry, load_registry
from tianwang.services import InfluxDB, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    with InfluxDB(tmp_path / "influxdb") as database:
        yield database


@pytest.fixture(scope="session")
def county() -> Registry:
    return load_registry(EXAMPLES / "county.yaml")
