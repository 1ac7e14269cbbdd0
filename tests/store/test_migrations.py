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


def test_the_lms_reads_leave_the_audit_log_and_come_back_on_the_way_down(database_url: str) -> None:
    """0012 moves the LMS's attendance reads out of the audit log into lms_reads; the other rows stay."""
    from alembic import command

    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0010")
    engine = sync_engine(database_url)
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO connections (id, name, provider, provider_settings, username, secret_salt, secret_digest,"
            " automatic_cancellation, extended_options, launch_window_minutes, active, created_at, updated_at)"
            " VALUES (1, 'acme', 'link', 'x', 'c', 's', 'd', true, false, 15, true, :t, :t)"), {"t": now})
        conn.execute(sa.text(
            "INSERT INTO sessions (id, connection_id, external_id, title, description, creator_email, starts_at,"
            " ends_at, utc_offset_minutes, zone, instructor_emails, extended_options, status, attendance_state,"
            " meeting_data, created_at, updated_at) VALUES (7, 1, 's-1', 't', '', 'a@example.com', :t, :t, 0, 'UTC',"
            " '[]', '{}', 'scheduled', 'collecting', '{}', :t, :t)"), {"t": now})
        for action, target in (("lms.session.create", "session:acme/s-1"), ("lms.attendance", "session:acme/s-1"),
                               ("lms.attendance", "session:acme/gone")):
            conn.execute(sa.text("INSERT INTO audit_log (at, actor, action, target, after) VALUES "
                                 "(:t, 'lms:acme', :action, :target, :after)"),
                         {"t": now, "action": action, "target": target, "after": '{"correlationId": "corr-1"}'})
    migrate.upgrade(database_url)
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT action, target FROM audit_log ORDER BY id")).all()
        moved = conn.execute(sa.text("SELECT session_id, actor, action, details FROM lms_reads")).all()
    assert [tuple(row) for row in kept] == [("lms.session.create", "session:acme/s-1"),
                                            ("lms.attendance", "session:acme/gone")]  # no part left to show it on
    [(session_id, actor, action, details)] = moved
    assert (session_id, actor, action) == (7, "lms:acme", "lms.attendance") and "corr-1" in str(details)
    command.downgrade(config, "0010")
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT action, target FROM audit_log ORDER BY action, target")).all()
    assert [tuple(row) for row in back] == [("lms.attendance", "session:acme/gone"),
                                            ("lms.attendance", "session:acme/s-1"),
                                            ("lms.session.create", "session:acme/s-1")]
    migrate.upgrade(database_url)
    engine.dispose()
