"""Incident store on SQLAlchemy: SQLite file by default, PostgreSQL in production.

Lifecycle (发现—处置—反馈): open -> acknowledged -> dispatched (on site) -> resolved (with a
finding from grid/data/findings.yaml) -> closed. A resolved incident may also be resolved
straight from acknowledged (a remote finding), and a resolved or closed one reopened.

An *active* incident is one that is not resolved or closed. Partial unique indexes keep at
most one active incident per (node, quantity, rule) and one active township parent per
(county, township, quantity, rule), so concurrent writers cannot create a duplicate: the
loser of an insert race rolls back and retries, and then extends the winner's row.

Every change made by an officer or by the system (creation, transition, note, attachment,
reassignment, escalation, grouping, reopening) is a row of ``incident_audit``: who, when,
from, to, why. Detector events that only extend an incident are counted in ``events``.

The schema is migrated by Alembic (grid/migrations) when the store opens.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.exc import IntegrityError, OperationalError

STATES = ("open", "acknowledged", "dispatched", "resolved", "closed")
ACTIVE_STATES = ("open", "acknowledged", "dispatched")
ENDED_STATES = ("resolved", "closed")
# Allowed moves; "open" from resolved/closed is a reopening (a rejected finding, a recurrence).
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged"}),
    "acknowledged": frozenset({"dispatched", "resolved"}),
    "dispatched": frozenset({"resolved"}),
    "resolved": frozenset({"closed", "open"}),
    "closed": frozenset({"open"}),
}
LEVELS = ("village", "township", "county")  # escalation goes rightwards only
SYSTEM = "system"  # the actor of the router's and the escalation timer's changes
COOLDOWN_S = 3600.0
GROUPING_WINDOW_S = 1800.0
FINDINGS_FILE = Path(__file__).parent / "data" / "findings.yaml"
MIGRATIONS = Path(__file__).parent / "migrations"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ACTIVE_SQL = "status IN ('open', 'acknowledged', 'dispatched')"
_ATTEMPTS = 50  # concurrent writers: each lost race costs one retry of the whole batch

metadata = sa.MetaData()

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=True),  # NULL for a township parent
    sa.Column("quantity", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("county", sa.String(64), nullable=False),
    sa.Column("township", sa.String(64), nullable=False),
    sa.Column("village", sa.String(64), nullable=False),
    sa.Column("officer_id", sa.String(64), nullable=False),  # the assigned officer
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
    sa.Column("scope", sa.String(16), nullable=False, server_default="node"),  # or township
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("incidents.id", name="fk_incidents_parent")),
    sa.Column("severity", sa.String(16), nullable=False, server_default="minor"),
    sa.Column("assigned_level", sa.String(16), nullable=False, server_default="village"),
    sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=True),  # NULL: no timer
    sa.Column("finding", sa.String(32), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),  # resolved (or closed)
    sa.Index(
        "one_active_incident",
        "node",
        "quantity",
        "rule",
        unique=True,
        sqlite_where=sa.text(f"scope = 'node' AND {_ACTIVE_SQL}"),
        postgresql_where=sa.text(f"scope = 'node' AND {_ACTIVE_SQL}"),
    ),
    sa.Index(
        "one_active_parent",
        "county",
        "township",
        "quantity",
        "rule",
        unique=True,
        sqlite_where=sa.text(f"scope = 'township' AND {_ACTIVE_SQL}"),
        postgresql_where=sa.text(f"scope = 'township' AND {_ACTIVE_SQL}"),
    ),
    sa.Index("ix_incidents_key", "node", "quantity", "rule", "ended_at"),
    sa.Index("ix_incidents_township", "county", "township", "quantity", "rule", "status"),
    sa.Index("ix_incidents_ack_due_at", "ack_due_at"),
    sa.Index("ix_incidents_parent_id", "parent_id"),
)

incident_audit = sa.Table(
    "incident_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "incident_id",
        sa.Integer,
        sa.ForeignKey("incidents.id", name="fk_incident_audit_incident"),
        nullable=False,
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # officer id, or "system"
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),  # per action: finding, officers, levels, ref
    sa.Index("ix_incident_audit_incident_id", "incident_id"),
)


# Officer API bearer tokens (grid/_auth.py): only the SHA-256 of a token is kept.
officer_tokens = sa.Table(
    "officer_tokens",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("officer_id", sa.String(64), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_officer_tokens_officer_id", "officer_id"),
)


class IncidentError(ValueError):
    """A change the lifecycle does not allow; the message says why."""


class UnknownIncident(LookupError):
    pass


class _Retry(Exception):
    """A concurrent writer changed a row under us: roll back and do the batch again."""


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    node: str | None  # None for a township parent
    quantity: str
    rule: str
    status: str
    township: str
    village: str
    officer_id: str  # the assigned officer
    value: float
    peak: float
    limit_value: float | None
    unit: str
    standard: str
    edition: str
    events: int  # detector events; for a township parent, the node incidents that joined
    county: str = ""
    scope: str = "node"
    parent_id: int | None = None
    severity: str = "minor"
    assigned_level: str = "village"
    ack_due_at: datetime | None = None
    finding: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def assigned_officer(self) -> str:
        return self.officer_id


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
    severity: str = "minor"
    ack_due_at: datetime | None = None  # when escalation starts unless acknowledged
    township_officer_id: str | None = None  # for a township parent; else "township:<id>"


@dataclass(frozen=True, slots=True)
class Extension:
    """A detector update for the active incident of (node, quantity, rule), if any."""

    node: str
    quantity: str
    rule: str
    value: float


Op = IncidentDraft | Extension


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    incident_id: int
    at: datetime
    actor: str
    action: str  # created, reopened, grouped, transition, note, attachment, reassigned, ...
    from_status: str | None
    to_status: str | None
    reason: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    digest: str  # SHA-256 hex of the bearer token
    officer_id: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def load_findings(path: Path = FINDINGS_FILE) -> dict[str, str]:
    """Finding code -> English description."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["findings"]
    return {str(code): str(entry["en"]) for code, entry in raw.items()}


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _incident(row: sa.Row) -> Incident:
    return Incident(
        id=row.id,
        node=row.node,
        quantity=row.quantity,
        rule=row.rule,
        status=row.status,
        township=row.township,
        village=row.village,
        officer_id=row.officer_id,
        value=row.value,
        peak=row.peak,
        limit_value=row.limit_value,
        unit=row.unit,
        standard=row.standard,
        edition=row.edition,
        events=row.events,
        county=row.county,
        scope=row.scope,
        parent_id=row.parent_id,
        severity=row.severity,
        assigned_level=row.assigned_level,
        ack_due_at=_utc(row.ack_due_at),
        finding=row.finding,
        started_at=_utc(row.started_at),
        updated_at=_utc(row.updated_at),
        ended_at=_utc(row.ended_at),
    )


def _overdue(incident: Incident, now: datetime) -> bool:
    """Open (not acknowledged) with an acknowledgement deadline that has passed."""
    due = incident.ack_due_at
    return incident.status == "open" and due is not None and due <= now


def _audit_entry(row: sa.Row) -> AuditEntry:
    return AuditEntry(
        row.id,
        row.incident_id,
        _utc(row.at),
        row.actor,
        row.action,
        row.from_status,
        row.to_status,
        row.reason,
        row.detail,
    )


def _need_text(value: str, what: str) -> None:
    if not value or not value.strip():
        raise IncidentError(f"{what} is required")


# Literal SQL, not bound values: no expanding IN to process per statement, and SQLite's
# planner can match the partial unique indexes' WHERE.
_active = sa.text(f"incidents.{_ACTIVE_SQL}")
_node_scope = sa.text("incidents.scope = 'node'")


def _extended(value: float, now: datetime) -> dict[str, Any]:
    return {
        "value": value,
        "peak": sa.case((incidents.c.peak < value, value), else_=incidents.c.peak),
        "updated_at": now,
        "events": incidents.c.events + 1,
    }


# The hot path, built once: composing SQLAlchemy expressions per event costs more than
# SQLite's work. Bind names differ from column names, as UPDATE ... VALUES requires.
_EXTEND = (
    incidents.update()
    .where(
        _node_scope
        & (incidents.c.node == sa.bindparam("key_node"))
        & (incidents.c.quantity == sa.bindparam("key_quantity"))
        & (incidents.c.rule == sa.bindparam("key_rule"))
        & _active
    )
    .values(
        value=sa.bindparam("new_value"),
        peak=sa.case(
            (incidents.c.peak < sa.bindparam("new_value"), sa.bindparam("new_value")),
            else_=incidents.c.peak,
        ),
        updated_at=sa.bindparam("now"),
        events=incidents.c.events + 1,
    )
    .returning(*incidents.c)
)
_LAST_ENDED = (
    sa.select(incidents.c.id, incidents.c.status)
    .where(
        _node_scope
        & (incidents.c.node == sa.bindparam("key_node"))
        & (incidents.c.quantity == sa.bindparam("key_quantity"))
        & (incidents.c.rule == sa.bindparam("key_rule"))
        & (incidents.c.ended_at >= sa.bindparam("since"))
    )
    .order_by(incidents.c.ended_at.desc())
    .limit(1)
)
_INSERT = incidents.insert().returning(*incidents.c)
_AUDIT = incident_audit.insert()
_EXTEND_PARENT = (
    incidents.update()
    .where((incidents.c.id == sa.bindparam("parent")) & _active)
    .values(
        value=sa.bindparam("new_value"),
        peak=sa.case(
            (incidents.c.peak < sa.bindparam("new_peak"), sa.bindparam("new_peak")),
            else_=incidents.c.peak,
        ),
        updated_at=sa.bindparam("now"),
    )
)


def _touch(parents: dict[int, tuple[float, float]], parent_id: int, value: float) -> None:
    peak = max(value, parents.get(parent_id, (value, value))[1])
    parents[parent_id] = (value, peak)


def _engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    # Writers queue on SQLite's single write lock: wait for it rather than fail.
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers do not block the writer; NORMAL: one fsync per checkpoint, not per
        # commit (a power cut may lose the last commits, never corrupt the file).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


@contextmanager
def _migration_lock(connection: sa.Connection) -> Iterator[None]:
    """Two processes opening a new database at once must not both create the schema."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(x'7469616e'::int)"))  # "tian"
        yield
        return
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migration-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # released when the file closes


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Alembic ``upgrade`` to ``revision``. A database made before migrations existed (the
    tables without ``alembic_version``) is first stamped with the initial revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection, _migration_lock(connection):
        config.attributes["connection"] = connection
        tables = sa.inspect(connection).get_table_names()
        if "incidents" in tables and "alembic_version" not in tables:
            command.stamp(config, "0001")
        command.upgrade(config, revision)


def _new_row(draft: IncidentDraft, now: datetime, **own: object) -> dict[str, object]:
    """The columns of a new open incident from its draft; ``own``: what a node incident and
    a township parent set differently (node, village, officer, start, events, scope, level)."""
    return dict(
        quantity=draft.quantity, rule=draft.rule, status="open", county=draft.county,
        township=draft.township, updated_at=now, value=draft.value, peak=draft.value,
        limit_value=draft.limit_value, unit=draft.unit, standard=draft.standard,
        edition=draft.edition, clause=draft.clause, severity=draft.severity,
        ack_due_at=draft.ack_due_at, **own,
    )  # fmt: skip


class IncidentStore:
    def __init__(
        self,
        url: str,
        *,
        cooldown_s: float = COOLDOWN_S,
        grouping_window_s: float = GROUPING_WINDOW_S,
        findings: dict[str, str] | None = None,
    ) -> None:
        """``cooldown_s``: an event within this long after its key's last incident was
        resolved or closed reopens that incident. ``grouping_window_s``: another node of the
        township counts as part of the same episode if its incident was extended this
        recently."""
        self.engine = _engine(url)
        self.cooldown = timedelta(seconds=cooldown_s)
        self.grouping_window = timedelta(seconds=grouping_window_s)
        self.findings = load_findings() if findings is None else findings
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- the router's side: detector events ---------------------------------------------

    def open_or_extend(
        self, draft: IncidentDraft, now: datetime | None = None
    ) -> tuple[Incident, bool]:
        """The active incident for the draft's (node, quantity, rule), extended with the new
        value; else the last one reopened, if it ended less than the cool-down ago; else a
        new one. The flag says whether the incident was (re)opened."""
        result = self.record([draft], now)[0]
        assert result is not None  # a draft always yields an incident
        return result

    def extend(
        self, node: str, quantity: str, rule: str, value: float, now: datetime | None = None
    ) -> Incident | None:
        result = self.record([Extension(node, quantity, rule, value)], now)[0]
        return None if result is None else result[0]

    def record(
        self, ops: Sequence[Op], now: datetime | None = None
    ) -> list[tuple[Incident, bool] | None]:
        """Apply a batch of detector changes in one transaction, in order. Per op: the
        incident and whether it was (re)opened, or None for an extension without an active
        incident. A lost race with another writer rolls back and replays the whole batch."""
        now = now or datetime.now(UTC)
        for _ in range(_ATTEMPTS):
            try:
                with self.engine.begin() as db:
                    parents: dict[int, tuple[float, float]] = {}
                    results = [self._apply(db, op, now, parents) for op in ops]
                    self._extend_parents(db, parents, now)
                    return results
            except (IntegrityError, OperationalError, _Retry):
                continue  # a duplicate key, a deadlock or a lock timeout: replay
        raise RuntimeError(f"could not record {len(ops)} incident changes after retries")

    def _apply(
        self, db: sa.Connection, op: Op, now: datetime, parents: dict[int, tuple[float, float]]
    ) -> tuple[Incident, bool] | None:
        """``parents``: township parents touched in this batch -> (last value, peak)."""
        key = {"key_node": op.node, "key_quantity": op.quantity, "key_rule": op.rule}
        row = db.execute(_EXTEND, {**key, "new_value": op.value, "now": now}).first()
        if row is not None:
            if row.parent_id is not None:
                _touch(parents, row.parent_id, op.value)
            return _incident(row), False
        if isinstance(op, Extension):
            return None
        incident = self._reopen(db, op, now) or self._insert(db, op, now)
        return self._group(db, incident, op, now, parents), True

    def _reopen(self, db: sa.Connection, draft: IncidentDraft, now: datetime) -> Incident | None:
        key = {"key_node": draft.node, "key_quantity": draft.quantity, "key_rule": draft.rule}
        last = db.execute(_LAST_ENDED, {**key, "since": now - self.cooldown}).first()
        if last is None:
            return None
        row = db.execute(
            incidents.update()
            .where((incidents.c.id == last.id) & (incidents.c.status == last.status))
            .values(
                status="open",
                finding=None,
                ended_at=None,
                parent_id=None,
                ack_due_at=draft.ack_due_at,
                **_extended(draft.value, now),
            )
            .returning(*incidents.c)
        ).first()
        if row is None:
            raise _Retry  # reopened or changed concurrently
        self._audit(
            db, row.id, now, SYSTEM, "reopened", last.status, "open",
            f"recurrence within the cool-down of {self.cooldown.total_seconds():g} s",
        )  # fmt: skip
        return _incident(row)

    def _insert(self, db: sa.Connection, draft: IncidentDraft, now: datetime) -> Incident:
        row = db.execute(
            _INSERT,
            _new_row(draft, now, node=draft.node, village=draft.village,
                     officer_id=draft.officer_id, started_at=draft.started_at, events=1,
                     scope="node", assigned_level="village"),
        ).one()  # fmt: skip
        self._audit(db, row.id, now, SYSTEM, "created", None, "open", "detector event")
        return _incident(row)

    def _group(
        self,
        db: sa.Connection,
        incident: Incident,
        draft: IncidentDraft,
        now: datetime,
        parents: dict[int, tuple[float, float]],
    ) -> Incident:
        """Put a newly (re)opened node incident under the township parent when other nodes of
        the township have an active incident of the same quantity and rule extended within
        the grouping window; the parent is created when the second node joins."""
        if db.dialect.name == "postgresql":
            # Two nodes opening at once would each miss the other's uncommitted row (READ
            # COMMITTED): take turns per township key. SQLite has one writer at a time anyway.
            key = f"{draft.county}/{draft.township}/{draft.quantity}/{draft.rule}"
            db.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        township = (
            (incidents.c.county == draft.county)
            & (incidents.c.township == draft.township)
            & (incidents.c.quantity == draft.quantity)
            & (incidents.c.rule == draft.rule)
            & _active
        )
        recent = now - self.grouping_window
        parent = db.execute(
            sa.select(incidents.c.id, incidents.c.updated_at).where(
                township & (incidents.c.scope == "township")
            )
        ).first()
        # A parent is extended with its children: recently updated means a live episode.
        if parent is not None and _utc(parent.updated_at) >= recent:
            parent_id, joining = parent.id, [incident.id]
        else:
            siblings = db.execute(
                sa.select(incidents.c.id, incidents.c.started_at).where(
                    township
                    & (incidents.c.scope == "node")
                    & (incidents.c.node != draft.node)
                    & (incidents.c.updated_at >= recent)
                )
            ).all()
            if not siblings:
                return incident
            if parent is None:
                started = min([_utc(s.started_at) for s in siblings] + [_utc(draft.started_at)])
                parent_id = self._insert_parent(db, draft, started, now)
            else:
                parent_id = parent.id
            joining = [s.id for s in siblings] + [incident.id]
        db.execute(
            incidents.update().where(incidents.c.id.in_(joining)).values(parent_id=parent_id)
        )
        for child in joining:
            self._audit(
                db, child, now, SYSTEM, "grouped", None, None,
                f"several nodes of township {draft.township} at once",
                {"parent_id": parent_id},
            )  # fmt: skip
        db.execute(
            incidents.update()
            .where(incidents.c.id == parent_id)
            .values(events=incidents.c.events + len(joining), updated_at=now)
        )
        _touch(parents, parent_id, draft.value)
        return replace(incident, parent_id=parent_id)

    def _insert_parent(
        self, db: sa.Connection, draft: IncidentDraft, started: datetime, now: datetime
    ) -> int:
        officer = draft.township_officer_id or f"township:{draft.township}"
        parent_id = db.execute(
            incidents.insert().values(
                _new_row(draft, now, node=None, village="", officer_id=officer,
                         started_at=started, events=0, scope="township",
                         assigned_level="township")
            )
        ).inserted_primary_key[0]  # fmt: skip
        self._audit(
            db, parent_id, now, SYSTEM, "created", None, "open",
            f"episode at several nodes of township {draft.township}",
        )  # fmt: skip
        return int(parent_id)

    @staticmethod
    def _extend_parents(
        db: sa.Connection, parents: dict[int, tuple[float, float]], now: datetime
    ) -> None:
        for parent_id, (value, peak) in sorted(parents.items()):  # one lock order: no deadlock
            db.execute(
                _EXTEND_PARENT,
                {"parent": parent_id, "new_value": value, "new_peak": peak, "now": now},
            )

    # --- the officers' side: lifecycle --------------------------------------------------

    def transition(
        self,
        incident_id: int,
        to: str,
        officer_id: str,
        reason: str,
        finding: str | None = None,
        now: datetime | None = None,
    ) -> Incident:
        """Move an incident along the lifecycle (TRANSITIONS). Resolving needs a finding
        from the findings file; acknowledging stops the escalation timer."""
        now = now or datetime.now(UTC)
        _need_text(officer_id, "officer_id")
        _need_text(reason, "reason")
        if to not in STATES:
            raise IncidentError(f"unknown state {to!r}; states: {', '.join(STATES)}")
        if to == "resolved" and finding not in self.findings:
            raise IncidentError(f"resolving needs a finding, one of: {', '.join(self.findings)}")
        if to != "resolved" and finding is not None:
            raise IncidentError("a finding is recorded only when resolving")
        values: dict[str, Any] = {"status": to, "updated_at": now}
        if to == "acknowledged":
            values["ack_due_at"] = None
        elif to == "resolved":
            values |= {"finding": finding, "ended_at": now}
        elif to == "open":
            values |= {"finding": None, "ended_at": None}
        with self.engine.begin() as db:
            current = self._locked(db, incident_id)
            if to not in TRANSITIONS[current.status]:
                raise IncidentError(f"incident {incident_id}: {current.status} -> {to} not allowed")
            try:
                row = db.execute(
                    incidents.update()
                    .where((incidents.c.id == incident_id) & (incidents.c.status == current.status))
                    .values(**values)
                    .returning(*incidents.c)
                ).first()
            except IntegrityError as exc:
                raise IncidentError(
                    f"incident {incident_id}: another incident is already active for its key"
                ) from exc
            if row is None:
                raise IncidentError(f"incident {incident_id} changed concurrently; try again")
            detail = {"finding": finding} if finding else None
            self._audit(
                db, incident_id, now, officer_id, "transition", current.status, to, reason, detail
            )
            return _incident(row)

    def reassign(
        self, incident_id: int, officer_id: str, by: str, reason: str, now: datetime | None = None
    ) -> Incident:
        now = now or datetime.now(UTC)
        _need_text(officer_id, "officer_id")
        _need_text(by, "by")
        _need_text(reason, "reason")
        with self.engine.begin() as db:
            current = self._locked(db, incident_id, active=True)
            row = db.execute(
                incidents.update()
                .where(incidents.c.id == incident_id)
                .values(officer_id=officer_id, updated_at=now)
                .returning(*incidents.c)
            ).one()
            self._audit(
                db, incident_id, now, by, "reassigned", current.status, current.status, reason,
                {"from_officer": current.officer_id, "to_officer": officer_id},
            )  # fmt: skip
            return _incident(row)

    def add_note(
        self, incident_id: int, officer_id: str, text: str, now: datetime | None = None
    ) -> AuditEntry:
        _need_text(officer_id, "officer_id")
        _need_text(text, "text")
        return self._annotate(incident_id, officer_id, "note", text, None, now)

    def add_attachment(
        self,
        incident_id: int,
        officer_id: str,
        url: str,
        sha256: str | None = None,
        media_type: str | None = None,
        caption: str = "",
        now: datetime | None = None,
    ) -> AuditEntry:
        """A photo, a lab report or a document, by reference: where it is (URL) and,
        optionally, the SHA-256 of its bytes so that a later copy can be checked."""
        _need_text(officer_id, "officer_id")
        _need_text(url, "url")
        if sha256 is not None and not _SHA256.fullmatch(sha256):
            raise IncidentError("sha256 must be 64 lowercase hex digits")
        detail = {"url": url, "sha256": sha256, "media_type": media_type}
        return self._annotate(incident_id, officer_id, "attachment", caption, detail, now)

    def _annotate(
        self,
        incident_id: int,
        actor: str,
        action: str,
        text: str,
        detail: dict[str, Any] | None,
        now: datetime | None,
    ) -> AuditEntry:
        now = now or datetime.now(UTC)
        with self.engine.begin() as db:
            status = self._locked(db, incident_id).status
            audit_id = self._audit(
                db, incident_id, now, actor, action, status, status, text, detail
            )
            row = db.execute(sa.select(incident_audit).where(incident_audit.c.id == audit_id))
            return _audit_entry(row.one())

    # --- escalation state (the policy lives elsewhere) ----------------------------------

    def due_for_escalation(self, now: datetime) -> list[Incident]:
        """Active incidents whose acknowledgement is overdue, the most overdue first."""
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(incidents)
                .where(_active & (incidents.c.ack_due_at <= now))
                .order_by(incidents.c.ack_due_at, incidents.c.id)
            )
            return [_incident(r) for r in rows]

    def escalate(
        self,
        incident_id: int,
        to_level: str,
        officer_id: str,
        now: datetime,
        ack_due_at: datetime | None = None,
        reason: str = "acknowledgement overdue",
        only_if_due: bool = False,
    ) -> Incident:
        """Hand an active incident to a higher level's officer; ``ack_due_at`` restarts the
        timer for that level (None: no further escalation). ``only_if_due``: refuse unless
        the incident is still open and overdue at ``now`` (an officer may have acknowledged
        it since the escalation timer read it)."""
        _need_text(officer_id, "officer_id")
        if to_level not in LEVELS:
            raise IncidentError(f"unknown level {to_level!r}; levels: {', '.join(LEVELS)}")
        with self.engine.begin() as db:
            current = self._locked(db, incident_id, active=True)
            if only_if_due and not _overdue(current, now):
                raise IncidentError(f"incident {incident_id} is no longer due for escalation")
            if LEVELS.index(to_level) <= LEVELS.index(current.assigned_level):
                raise IncidentError(
                    f"incident {incident_id} is at {current.assigned_level}: cannot escalate "
                    f"to {to_level}"
                )
            row = db.execute(
                incidents.update()
                .where(
                    (incidents.c.id == incident_id)
                    & (incidents.c.assigned_level == current.assigned_level)
                )
                .values(
                    assigned_level=to_level,
                    officer_id=officer_id,
                    ack_due_at=ack_due_at,
                    updated_at=now,
                )
                .returning(*incidents.c)
            ).first()
            if row is None:
                raise IncidentError(f"incident {incident_id} escalated concurrently")
            self._audit(
                db, incident_id, now, SYSTEM, "escalated", current.status, current.status, reason,
                {
                    "from_level": current.assigned_level,
                    "to_level": to_level,
                    "from_officer": current.officer_id,
                    "to_officer": officer_id,
                },
            )  # fmt: skip
            return _incident(row)

    # --- officer API tokens (grid/_auth.py issues and checks them) -----------------------

    def add_token(
        self, digest: str, officer_id: str, issued_at: datetime, expires_at: datetime
    ) -> None:
        with self.engine.begin() as db:
            db.execute(
                officer_tokens.insert().values(
                    digest=digest, officer_id=officer_id, issued_at=issued_at,
                    expires_at=expires_at,
                )
            )  # fmt: skip

    def token(self, digest: str) -> TokenRecord | None:
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(officer_tokens).where(officer_tokens.c.digest == digest)
            ).first()
        if row is None:
            return None
        return TokenRecord(row.digest, row.officer_id, _utc(row.issued_at),
                           _utc(row.expires_at), _utc(row.revoked_at))  # fmt: skip

    def revoke_tokens(
        self, now: datetime, *, digest: str | None = None, officer_id: str | None = None
    ) -> int:
        """Revoke one token (``digest``) or all of an officer's; how many were live."""
        if (digest is None) == (officer_id is None):
            raise ValueError("pass digest or officer_id")
        match = (
            officer_tokens.c.digest == digest
            if digest is not None
            else officer_tokens.c.officer_id == officer_id
        )
        with self.engine.begin() as db:
            done = db.execute(
                officer_tokens.update()
                .where(match & officer_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return done.rowcount

    def hand_off(
        self,
        incident_id: int,
        from_officer: str,
        to_officer: str,
        now: datetime,
        ack_due_at: datetime | None,
        reason: str,
    ) -> Incident:
        """Duty passed to another officer at the same level: an open incident still assigned
        to ``from_officer`` goes to ``to_officer`` with the timer set to ``ack_due_at``.
        Refused (IncidentError) if it was acknowledged or reassigned meanwhile."""
        _need_text(to_officer, "to_officer")
        _need_text(reason, "reason")
        with self.engine.begin() as db:
            current = self._locked(db, incident_id, active=True)
            if current.status != "open" or current.officer_id != from_officer:
                raise IncidentError(f"incident {incident_id} changed since it was read")
            row = db.execute(
                incidents.update()
                .where(incidents.c.id == incident_id)
                .values(officer_id=to_officer, ack_due_at=ack_due_at, updated_at=now)
                .returning(*incidents.c)
            ).one()
            self._audit(
                db, incident_id, now, SYSTEM, "handed_off", "open", "open", reason,
                {"from_officer": from_officer, "to_officer": to_officer,
                 "level": current.assigned_level},
            )  # fmt: skip
            return _incident(row)

    def stop_timer(self, incident_id: int, now: datetime, reason: str) -> Incident:
        """No level left to escalate to: the overdue incident stays with its officer and is
        no longer due. Refused (IncidentError) unless it is still open and overdue."""
        _need_text(reason, "reason")
        with self.engine.begin() as db:
            current = self._locked(db, incident_id, active=True)
            if not _overdue(current, now):
                raise IncidentError(f"incident {incident_id} is no longer due for escalation")
            row = db.execute(
                incidents.update()
                .where(incidents.c.id == incident_id)
                .values(ack_due_at=None, updated_at=now)
                .returning(*incidents.c)
            ).one()
            self._audit(
                db, incident_id, now, SYSTEM, "timer_stopped", "open", "open", reason,
                {"level": current.assigned_level},
            )  # fmt: skip
            return _incident(row)

    def record_notification(
        self, incident_id: int, reason: str, detail: dict[str, Any], now: datetime
    ) -> AuditEntry:
        """Delivery attempts of one notice, as an audit row ``notified`` (who was told what
        through which channel is part of the incident's record)."""
        _need_text(reason, "reason")
        return self._annotate(incident_id, SYSTEM, "notified", reason, detail, now)

    def active_with_audit(self) -> list[tuple[Incident, list[AuditEntry]]]:
        """Every active incident with its audit log, in two queries (the escalation timer's
        view: who was assigned when, and what they have been told)."""
        with self.engine.connect() as db:
            found = [
                _incident(r)
                for r in db.execute(sa.select(incidents).where(_active).order_by(incidents.c.id))
            ]
            logs: dict[int, list[AuditEntry]] = {i.id: [] for i in found}
            rows = db.execute(
                sa.select(incident_audit)
                .join(incidents, incidents.c.id == incident_audit.c.incident_id)
                .where(_active)
                .order_by(incident_audit.c.id)
            )
            for row in rows:
                if row.incident_id in logs:  # not one that became active after the first read
                    logs[row.incident_id].append(_audit_entry(row))
            return [(i, logs[i.id]) for i in found]

    # --- reading ------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        with self.engine.connect() as db:
            return self._get(db, incident_id)

    def all(self) -> list[Incident]:
        with self.engine.connect() as db:
            return [_incident(r) for r in db.execute(sa.select(incidents).order_by(incidents.c.id))]

    def active(self) -> list[Incident]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(incidents).where(_active).order_by(incidents.c.id))
            return [_incident(r) for r in rows]

    def children(self, parent_id: int) -> list[Incident]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(incidents)
                .where(incidents.c.parent_id == parent_id)
                .order_by(incidents.c.id)
            )
            return [_incident(r) for r in rows]

    def audit(self, incident_id: int) -> list[AuditEntry]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(incident_audit)
                .where(incident_audit.c.incident_id == incident_id)
                .order_by(incident_audit.c.id)
            )
            return [_audit_entry(r) for r in rows]

    def notes(self, incident_id: int) -> list[AuditEntry]:
        return [a for a in self.audit(incident_id) if a.action == "note"]

    def attachments(self, incident_id: int) -> list[AuditEntry]:
        return [a for a in self.audit(incident_id) if a.action == "attachment"]

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _get(db: sa.Connection, incident_id: int) -> Incident:
        row = db.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            raise UnknownIncident(incident_id)
        return _incident(row)

    @staticmethod
    def _locked(db: sa.Connection, incident_id: int, active: bool = False) -> Incident:
        """The row, locked until commit on PostgreSQL (SQLite has one writer anyway)."""
        row = db.execute(
            sa.select(incidents).where(incidents.c.id == incident_id).with_for_update()
        ).first()
        if row is None:
            raise UnknownIncident(incident_id)
        if active and row.status not in ACTIVE_STATES:
            raise IncidentError(f"incident {incident_id} is {row.status}, not active")
        return _incident(row)

    @staticmethod
    def _audit(
        db: sa.Connection,
        incident_id: int,
        at: datetime,
        actor: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        reason: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        return int(
            db.execute(
                _AUDIT,
                dict(
                    incident_id=incident_id,
                    at=at,
                    actor=actor,
                    action=action,
                    from_status=from_status,
                    to_status=to_status,
                    reason=reason,
                    detail=detail,
                ),
            ).inserted_primary_key[0]
        )
