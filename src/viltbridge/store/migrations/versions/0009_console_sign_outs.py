"""console sign-outs: a signed-out session's cookie is refused until it would have expired

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import viltbridge.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UTC_DATETIME = viltbridge.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_sign_outs",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["console_users.id"],
                                name=op.f("fk_console_sign_outs_user_id_console_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_console_sign_outs")),
    )
    with op.batch_alter_table("console_sign_outs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_sign_outs_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sign_outs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sign_outs_expires_at"))
    op.drop_table("console_sign_outs")
