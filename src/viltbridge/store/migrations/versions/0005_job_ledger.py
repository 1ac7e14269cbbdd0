"""jobs and periodic_runs: the durable job ledger behind Huey; sessions.meeting_pending/meeting_error

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meeting_pending", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("meeting_error", sa.Text(), nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", UTC_DATETIME, nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", UTC_DATETIME, nullable=True),
        sa.Column("run_again", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_jobs_connection_id_connections"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name=op.f("fk_jobs_session_id_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_jobs_dedupe_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_due", ["state", "run_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_session_id"), ["session_id"], unique=False)
    op.create_table(
        "periodic_runs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("slot", UTC_DATETIME, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", "slot", name=op.f("pk_periodic_runs")),
    )


def downgrade() -> None:
    op.drop_table("periodic_runs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_session_id"))
        batch_op.drop_index("ix_jobs_due")
    op.drop_table("jobs")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("meeting_error")
        batch_op.drop_column("meeting_pending")
