"""registrations: learners registered with the provider ahead of their click (pre-registration), their links

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("lms_email", sa.String(length=320), nullable=False),
        sa.Column("meeting_id", sa.String(length=200), nullable=False),
        sa.Column("provider_url", sa.Text(), nullable=False),
        sa.Column("identity", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("registered_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_registrations_session_id_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
        sa.UniqueConstraint("session_id", "email", name=op.f("uq_registrations_session_id_email")),
    )


def downgrade() -> None:
    op.drop_table("registrations")
