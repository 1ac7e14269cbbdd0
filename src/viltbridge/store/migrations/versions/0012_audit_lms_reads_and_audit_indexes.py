"""lms_reads: the LMS's attendance reads leave the audit log for their own table; indexes for the log's filters

The reads already in the audit log move (a read of a part deleted since stays where it was, kept out of the log
page by its action).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)

# An audit row of a read names its part as `session:<connection name>/<external id>`. Constant SQL, no input.
MOVE_READS = """
INSERT INTO lms_reads (session_id, at, actor, action, details)
SELECT s.id, a.at, a.actor, a.action, a.after
FROM sessions s JOIN connections c ON c.id = s.connection_id
JOIN audit_log a ON a.target = 'session:' || c.name || '/' || s.external_id
WHERE a.action = 'lms.attendance' AND a.after IS NOT NULL
ORDER BY a.id
"""
DROP_MOVED_READS = """
DELETE FROM audit_log
WHERE action = 'lms.attendance' AND after IS NOT NULL AND EXISTS (
    SELECT 1 FROM sessions s JOIN connections c ON c.id = s.connection_id
    WHERE audit_log.target = 'session:' || c.name || '/' || s.external_id)
"""
PUT_READS_BACK = """
INSERT INTO audit_log (at, actor, action, target, after)
SELECT r.at, r.actor, r.action, 'session:' || c.name || '/' || s.external_id, r.details
FROM lms_reads r JOIN sessions s ON s.id = r.session_id JOIN connections c ON c.id = s.connection_id
ORDER BY r.id
"""


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
    op.execute(MOVE_READS)
    op.execute(DROP_MOVED_READS)


def downgrade() -> None:
    op.execute(PUT_READS_BACK)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_target_id")
        batch_op.drop_index("ix_audit_log_action_id")
        batch_op.drop_index("ix_audit_log_actor_id")
    with op.batch_alter_table("lms_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lms_reads_session_id"))
    op.drop_table("lms_reads")
