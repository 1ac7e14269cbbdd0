"""attendance ledger: segments, results, reviews, aliases; attendance policy per connection and per session

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f(f"fk_{table}_session_id_sessions"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    for table in ("connections", "sessions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("attendance_policy", sa.JSON(), server_default="{}", nullable=False))
    op.create_table(
        "attendance_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=500), nullable=False),
        sa.Column("participant_key", sa.String(length=200), nullable=False),
        sa.Column("joined_at", UTC_DATETIME, nullable=False),
        sa.Column("left_at", UTC_DATETIME, nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("display_name", sa.String(length=500), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        _session_fk("attendance_segments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_segments")),
        sa.UniqueConstraint("session_id", "source", "dedupe_key",
                            name=op.f("uq_attendance_segments_session_id_source_dedupe_key")),
    )
    with op.batch_alter_table("attendance_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attendance_segments_session_id"), ["session_id"], unique=False)
    op.create_table(
        "attendance_results",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("attended", sa.Boolean(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("computed_at", UTC_DATETIME, nullable=False),
        _session_fk("attendance_results"),
        sa.PrimaryKeyConstraint("session_id", "email_key", name=op.f("pk_attendance_results")),
    )
    op.create_table(
        "attendance_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=500), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("joined_at", UTC_DATETIME, nullable=False),
        sa.Column("left_at", UTC_DATETIME, nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        _session_fk("attendance_reviews"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_reviews")),
    )
    with op.batch_alter_table("attendance_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attendance_reviews_session_id"), ["session_id"], unique=False)
    op.create_table(
        "attendance_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("provider_email", sa.String(length=320), nullable=False),
        sa.Column("lms_email", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_attendance_aliases_connection_id_connections"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_aliases")),
        sa.UniqueConstraint("connection_id", "provider_email",
                            name=op.f("uq_attendance_aliases_connection_id_provider_email")),
    )


def downgrade() -> None:
    op.drop_table("attendance_aliases")
    with op.batch_alter_table("attendance_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendance_reviews_session_id"))
    op.drop_table("attendance_reviews")
    op.drop_table("attendance_results")
    with op.batch_alter_table("attendance_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attendance_segments_session_id"))
    op.drop_table("attendance_segments")
    for table in ("sessions", "connections"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("attendance_policy")
