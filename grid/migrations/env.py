"""Alembic environment for the incident store.

``IncidentStore`` runs the migrations itself (``grid._store.migrate``), on its own connection
passed in ``config.attributes["connection"]``. From a shell:
``alembic -c grid/migrations/alembic.ini -x url=sqlite:///var/incidents.sqlite upgrade head``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from grid._store import metadata


def _run(connection: sa.Connection) -> None:
    # Batch mode: SQLite changes a column only by copying the table.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database: -x url=sqlite:///path/incidents.sqlite")
    with sa.create_engine(url).begin() as connection:
        _run(connection)


main()
