"""Alembic: the store migrates at open, a database at the old schema is upgraded (SQLite and
a private PostgreSQL), and the migrations build exactly the store's metadata."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from grid import IncidentStore, migrate
from grid._store import MIGRATIONS, metadata
from tests.grid.conftest import T0, draft
from tianwang.services import PostgreSQL

# the newest revision in grid/migrations/versions (a new revision must not break these tests)
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()

OLD_ROW = {
    "node": "n1",
    "quantity": "PM2.5",
    "rule": "1h_mean",
    "status": "open",
    "county": "c1",
    "township": "t1",
    "village": "v1",
    "officer_id": "off-v1",
    "started_at": T0,
    "updated_at": T0,
    "value": 80.0,
    "peak": 90.0,
    "limit_value": 75.0,
    "unit": "ug/m3",
    "standard": "GB 3095",
    "edition": "GB 3095-2012",
    "clause": "table 1",
    "events": 4,
}


def _version(engine: sa.Engine) -> str:
    with engine.connect() as db:
        return db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def _old_database(url: str, *, alembic_version: bool) -> None:
    """The schema as the store made it before this change, with one open incident; without
    ``alembic_version`` as ``create_all`` left it."""
    engine = sa.create_engine(url)
    migrate(engine, "0001")
    with engine.begin() as db:
        db.execute(sa.table("incidents", *map(sa.column, OLD_ROW)).insert().values(OLD_ROW))
        if not alembic_version:
            db.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()


def _check_upgraded(url: str) -> None:
    store = IncidentStore(url)
    assert _version(store.engine) == HEAD
    [old] = store.all()
    assert (old.status, old.scope, old.assigned_level, old.severity, old.events) == (
        "open",
        "node",
        "village",
        "minor",
        4,
    )
    again, created = store.open_or_extend(draft("n1", value=95.0), now=T0 + timedelta(hours=1))
    assert not created and again.id == old.id and again.events == 5 and again.peak == 95.0
    store.transition(old.id, "acknowledged", "off-v1", "received")
    assert [a.action for a in store.audit(old.id)] == ["transition"]
    store.close()


@pytest.mark.parametrize("alembic_version", [True, False])
def test_a_sqlite_database_at_the_old_schema_is_upgraded(
    tmp_path: Path, alembic_version: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'incidents.sqlite'}"
    _old_database(url, alembic_version=alembic_version)
    _check_upgraded(url)


@pytest.mark.parametrize("alembic_version", [True, False])
def test_a_postgres_database_at_the_old_schema_is_upgraded(
    postgres: PostgreSQL, alembic_version: bool
) -> None:
    url = postgres.create_database("old")
    _old_database(url, alembic_version=alembic_version)
    _check_upgraded(url)


def test_migrations_build_the_store_metadata(store_url: str) -> None:
    store = IncidentStore(store_url)
    with store.engine.connect() as db:
        assert compare_metadata(MigrationContext.configure(db), metadata) == []
    assert _version(store.engine) == HEAD
    IncidentStore(store_url).close()  # opening again is a no-op
    store.close()


def test_downgrade_to_the_old_schema_keeps_incidents(store_url: str) -> None:
    store = IncidentStore(store_url)
    a, _ = store.open_or_extend(draft("n1"), now=T0)
    store.open_or_extend(draft("n2"), now=T0)  # makes a township parent
    store.transition(a.id, "acknowledged", "off-v1", "received")
    store.close()
    engine = sa.create_engine(store_url)
    from alembic import command
    from alembic.config import Config

    from grid._store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as db:
        config.attributes["connection"] = db
        command.downgrade(config, "0001")
    with engine.connect() as db:
        rows = db.execute(sa.text("SELECT node, status FROM incidents ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("n1", "open"), ("n2", "open")]
    engine.dispose()
    _check_upgraded_again = IncidentStore(store_url)
    assert len(_check_upgraded_again.all()) == 2
    _check_upgraded_again.close()
