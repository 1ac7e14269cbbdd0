"""lms_reads: the LMS's attendance reads leave the audit log for their own table; indexes for the log's filters

Revision ID: 0011_audit
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0011_audit"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lms_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_lms_reads_session_id_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lms_reads")),
    )
    with op.batch_alter_table("lms_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lms_reads_session_id"), ["session_id"], unique=False)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor_id", ["actor", "id"], unique=False)
        batch_op.create_index("ix_audit_log_action_id", ["action", "id"], unique=False)
        batch_op.create_index("ix_audit_log_target_id", ["target", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_target_id")
        batch_op.drop_index("ix_audit_log_action_id")
        batch_op.drop_index("ix_audit_log_actor_id")
    with op.batch_alter_table("lms_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lms_reads_session_id"))
    op.drop_table("lms_reads")
