"""provider_events: webhook events as received, once each

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("meeting_id", sa.String(length=200), nullable=True),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", viltbridge.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", viltbridge.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_provider_events_connection_id_connections"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_events")),
        sa.UniqueConstraint("connection_id", "dedupe_key", name=op.f("uq_provider_events_connection_id_dedupe_key")),
    )
    with op.batch_alter_table("provider_events", schema=None) as batch_op:
        batch_op.create_index("ix_provider_events_meeting", ["connection_id", "meeting_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("provider_events", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_events_meeting")
    op.drop_table("provider_events")
