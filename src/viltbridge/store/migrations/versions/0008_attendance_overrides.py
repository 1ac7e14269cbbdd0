"""attendance overrides: an admin's decision for a learner, with the reason

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "attendance_overrides",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name=op.f("fk_attendance_overrides_session_id_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", "email_key", name=op.f("pk_attendance_overrides")),
    )


def downgrade() -> None:
    op.drop_table("attendance_overrides")
