"""Officer API bearer tokens: the SHA-256 of each token, its officer, expiry and revocation.

The token itself is never stored (grid/_auth.py hands it out once, at login).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "officer_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_officer_tokens_officer_id", "officer_tokens", ["officer_id"])


def downgrade() -> None:
    """Back to 0002: every issued token is forgotten (officers log in again)."""
    op.drop_table("officer_tokens")
