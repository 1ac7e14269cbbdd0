"""Migrations run on SQLite and PostgreSQL alike, down and up, keeping data."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from viltbridge.store import migrate
from viltbridge.store.db import sync_engine


def test_down_and_up_again_keeps_launches_and_backfills_their_lms_email(database_url: str) -> None:
    from alembic import command

    command.downgrade(migrate.alembic_config(database_url), "0001")
    engine = sync_engine(database_url)
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO connections (id, name, provider, provider_settings, username, secret_salt, secret_digest,"
            " automatic_cancellation, extended_options, launch_window_minutes, active, created_at, updated_at)"
            " VALUES (1, 'c', 'link', 'x', 'c', 's', 'd', true, false, 15, true, :t, :t)"), {"t": now})
        conn.execute(sa.text(
            "INSERT INTO sessions (id, connection_id, external_id, title, description, creator_email, starts_at,"
            " ends_at, utc_offset_minutes, zone, instructor_emails, extended_options, status, attendance_state,"
            " meeting_data, created_at, updated_at) VALUES (1, 1, 's', 't', '', 'a@example.com', :t, :t, 0, 'UTC',"
            " '[]', '{}', 'scheduled', 'collecting', '{}', :t, :t)"), {"t": now})
        conn.execute(sa.text(
            "INSERT INTO launches (session_id, email, role, clicked_at, provider_url, personal)"
            " VALUES (1, 'l@example.com', 'attendee', :t, 'https://x', false)"), {"t": now})
    migrate.upgrade(database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT email, lms_email FROM launches")).one()
    assert tuple(row) == ("l@example.com", "l@example.com")
    assert migrate.current_revision(database_url) == _head()
    engine.dispose()


def _head() -> str:
    head = migrate.head_revision()
    assert head is not None
    return head


def test_the_migrated_schema_is_what_the_models_describe(database_url: str) -> None:
    """A model changed without a migration (or the other way round) fails here, on both databases."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from viltbridge.store.tables import Base

    engine = sync_engine(database_url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []
