"""launches.lms_email: the email as the LMS spelled it; sessions.meeting_cancelled

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lms_email", sa.String(length=320), nullable=True))
    # Launches recorded before this kept only the normalised spelling; it is the best there is.
    op.execute("UPDATE launches SET lms_email = email")
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.alter_column("lms_email", existing_type=sa.String(length=320), nullable=False)
    # Whether the provider meeting was cancelled too (it is not when automatic cancellation is off).
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meeting_cancelled", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("meeting_cancelled")
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.drop_column("lms_email")
