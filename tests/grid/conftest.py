"""Store fixtures: every store test runs on SQLite and on PostgreSQL, for real.

One PostgreSQL cluster serves the module (initdb takes a second or two); each test gets a new
database in it, so tests stay independent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grid import IncidentDraft, IncidentStore
from tianwang.services import PostgreSQL

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_databases = itertools.count()


@pytest.fixture(scope="module")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgreSQL]:
    with PostgreSQL(tmp_path_factory.mktemp("postgresql")) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.sqlite'}"
    cluster: PostgreSQL = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"test_{next(_databases)}")


@pytest.fixture
def store(store_url: str) -> Iterator[IncidentStore]:
    incident_store = IncidentStore(store_url, cooldown_s=3600, grouping_window_s=1800)
    yield incident_store
    incident_store.close()


def draft(
    node: str = "n1",
    value: float = 80.0,
    *,
    quantity: str = "PM2.5",
    rule: str = "1h_mean",
    county: str = "c1",
    township: str = "t1",
    village: str = "v1",
    officer_id: str = "off-v1",
    started_at: datetime = T0,
    ack_due_at: datetime | None = None,
    severity: str = "minor",
    township_officer_id: str | None = None,
) -> IncidentDraft:
    return IncidentDraft(
        node=node,
        quantity=quantity,
        rule=rule,
        county=county,
        township=township,
        village=village,
        officer_id=officer_id,
        started_at=started_at,
        value=value,
        limit_value=75.0,
        unit="ug/m3",
        standard="GB 3095",
        edition="GB 3095-2012",
        clause="table 1",
        severity=severity,
        ack_due_at=ack_due_at,
        township_officer_id=township_officer_id,
    )
