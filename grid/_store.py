"""Incident store on SQLAlchemy: SQLite file by default, PostgreSQL in production.

At most one open incident per (node, quantity, rule), enforced by a partial unique index so
that concurrent writers cannot create a duplicate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

metadata = sa.MetaData()

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("quantity", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("county", sa.String(64), nullable=False),
    sa.Column("township", sa.String(64), nullable=False),
    sa.Column("village", sa.String(64), nullable=False),
    sa.Column("officer_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("peak", sa.Float, nullable=False),
    sa.Column("limit_value", sa.Float, nullable=True),  # NULL: an anomaly rule, no limit
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("standard", sa.String(64), nullable=False),
    sa.Column("edition", sa.String(64), nullable=False),
    sa.Column("clause", sa.String(128), nullable=False),
    sa.Column("events", sa.Integer, nullable=False, default=1),
    sa.Index(
        "one_open_incident",
        "node",
        "quantity",
        "rule",
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
)


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    node: str
    quantity: str
    rule: str
    status: str
    township: str
    village: str
    officer_id: str
    value: float
    peak: float
    limit_value: float | None
    unit: str
    standard: str
    edition: str
    events: int


@dataclass(frozen=True, slots=True)
class IncidentDraft:
    """What the router knows when an episode opens."""

    node: str
    quantity: str
    rule: str
    county: str
    township: str
    village: str
    officer_id: str
    started_at: datetime
    value: float
    limit_value: float | None
    unit: str
    standard: str
    edition: str
    clause: str


def _incident(row: sa.Row) -> Incident:
    return Incident(
        row.id,
        row.node,
        row.quantity,
        row.rule,
        row.status,
        row.township,
        row.village,
        row.officer_id,
        row.value,
        row.peak,
        row.limit_value,
        row.unit,
        row.standard,
        row.edition,
        row.events,
    )


class IncidentStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        metadata.create_all(self.engine)

    def open_or_extend(self, draft: IncidentDraft) -> tuple[Incident, bool]:
        """The open incident for the draft's (node, quantity, rule), extended with the new
        value, or a new one; the flag says whether it was created."""
        now = datetime.now(UTC)
        key = (
            (incidents.c.node == draft.node)
            & (incidents.c.quantity == draft.quantity)
            & (incidents.c.rule == draft.rule)
            & (incidents.c.status == "open")
        )
        for _ in range(3):  # a concurrent writer may win the insert; then we extend its row
            with self.engine.begin() as db:
                row = db.execute(sa.select(incidents).where(key)).first()
                if row is not None:
                    return self._extend_row(db, row.id, draft.value, now), False
                try:
                    with db.begin_nested():
                        new_id = db.execute(
                            incidents.insert().values(
                                **asdict(draft),
                                status="open",
                                updated_at=now,
                                peak=draft.value,
                                events=1,
                            )
                        ).inserted_primary_key[0]
                except IntegrityError:
                    continue
                return self.get(db, new_id), True
        raise RuntimeError(f"could not open or extend an incident for {draft}")

    def extend(self, node: str, quantity: str, rule: str, value: float) -> Incident | None:
        with self.engine.begin() as db:
            row = db.execute(
                sa.select(incidents).where(
                    (incidents.c.node == node)
                    & (incidents.c.quantity == quantity)
                    & (incidents.c.rule == rule)
                    & (incidents.c.status == "open")
                )
            ).first()
            if row is None:
                return None
            return self._extend_row(db, row.id, value, datetime.now(UTC))

    def _extend_row(
        self, db: sa.Connection, incident_id: int, value: float, now: datetime
    ) -> Incident:
        peak = sa.case((incidents.c.peak < value, value), else_=incidents.c.peak)
        db.execute(
            incidents.update()
            .where(incidents.c.id == incident_id)
            .values(value=value, peak=peak, updated_at=now, events=incidents.c.events + 1)
        )
        return self.get(db, incident_id)

    @staticmethod
    def get(db: sa.Connection, incident_id: int) -> Incident:
        return _incident(
            db.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()
        )

    def all(self) -> list[Incident]:
        with self.engine.connect() as db:
            return [_incident(r) for r in db.execute(sa.select(incidents).order_by(incidents.c.id))]
