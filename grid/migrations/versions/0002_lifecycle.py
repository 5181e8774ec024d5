"""Lifecycle, audit, township parents and escalation state.

One *active* (open, acknowledged or dispatched) incident per (node, quantity, rule) instead
of one 'open'; township parents (scope 'township', node NULL, children by parent_id);
severity, assigned level and acknowledgement deadline; finding and end time; the audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ACTIVE = "status IN ('open', 'acknowledged', 'dispatched')"


def upgrade() -> None:
    op.drop_index("one_open_incident", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.alter_column("node", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("scope", sa.String(16), nullable=False, server_default="node"))
        batch.add_column(sa.Column("parent_id", sa.Integer, nullable=True))
        batch.add_column(
            sa.Column("severity", sa.String(16), nullable=False, server_default="minor")
        )
        batch.add_column(
            sa.Column("assigned_level", sa.String(16), nullable=False, server_default="village")
        )
        batch.add_column(sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finding", sa.String(32), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key("fk_incidents_parent", "incidents", ["parent_id"], ["id"])
    for name, columns, scope in (
        ("one_active_incident", ["node", "quantity", "rule"], "node"),
        ("one_active_parent", ["county", "township", "quantity", "rule"], "township"),
    ):
        where = sa.text(f"scope = '{scope}' AND {_ACTIVE}")
        op.create_index(
            name,
            "incidents",
            columns,
            unique=True,
            sqlite_where=where,
            postgresql_where=where,
        )
    op.create_index("ix_incidents_key", "incidents", ["node", "quantity", "rule", "ended_at"])
    op.create_index(
        "ix_incidents_township", "incidents", ["county", "township", "quantity", "rule", "status"]
    )
    op.create_index("ix_incidents_ack_due_at", "incidents", ["ack_due_at"])
    op.create_index("ix_incidents_parent_id", "incidents", ["parent_id"])
    op.create_table(
        "incident_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            sa.Integer,
            sa.ForeignKey("incidents.id", name="fk_incident_audit_incident"),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    op.create_index("ix_incident_audit_incident_id", "incident_audit", ["incident_id"])


def downgrade() -> None:
    """Back to 0001: the audit log, township parents and lifecycle beyond 'open' are lost
    (incidents no longer open are kept with their status)."""
    op.drop_table("incident_audit")
    for name in (
        "ix_incidents_parent_id",
        "ix_incidents_ack_due_at",
        "ix_incidents_township",
        "ix_incidents_key",
        "one_active_parent",
        "one_active_incident",
    ):
        op.drop_index(name, table_name="incidents")
    op.execute("UPDATE incidents SET parent_id = NULL")
    op.execute("DELETE FROM incidents WHERE scope = 'township'")
    # Acknowledged or dispatched were "open" to the old code.
    op.execute("UPDATE incidents SET status = 'open' WHERE " + _ACTIVE)
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint("fk_incidents_parent", type_="foreignkey")
        for column in (
            "ended_at",
            "finding",
            "ack_due_at",
            "assigned_level",
            "severity",
            "parent_id",
            "scope",
        ):
            batch.drop_column(column)
        batch.alter_column("node", existing_type=sa.String(64), nullable=False)
    op.create_index(
        "one_open_incident",
        "incidents",
        ["node", "quantity", "rule"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )
