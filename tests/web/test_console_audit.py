"""The audit log page: each entry as what changed (field: old → new, nested fields dotted, secrets only said to have
changed), filters by who, what, connection, session and days, paging newest first, no LMS attendance reads in it,
and an override's entry saying which decision it replaced."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from tests.web.test_console_access import csrf_of, make_user, sign_in
from viltbridge.app import connections, console_users
from viltbridge.core.permissions import ConsoleRole
from viltbridge.jobs.runner import JobRunner


def entries(client: TestClient, query: str = "") -> list[str]:
    """The log's rows as text, newest first (tags dropped, spaces squeezed)."""
    answer = client.get(f"/console/audit{query}")
    assert answer.status_code == 200, answer.text
    rows = re.findall(r'<tr data-audit="\d+">(.*?)</tr>', answer.text, re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in rows]


def audit_count(db: Db, action: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = :action"),
                                {"action": action}).scalar_one())


def test_each_entry_shows_what_changed_with_secrets_only_said_to_change(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    shared_secret = "bbb-shared-secret-9f3e0c1d2b4a"
    db.create_connection("acme-bbb", "bbb", server_url="https://bbb.example.org/bigbluebutton/",
                         shared_secret=shared_secret)
    with db.session() as s, s.begin():
        connections.change(s, db.keyring, "acme-bbb", {"launch_window_minutes": "30",
                                                       "server_url": "https://bbb2.example.org/bigbluebutton/"},
                           actor="ada@example.com")
        connections.change(s, db.keyring, "acme-bbb", {"shared_secret": shared_secret + "-rotated"},
                           actor="ada@example.com")
        console_users.set_roles(s, NOW, "cli:root", "ada@example.com", ["integrations-manage", "roster-manage"])
    sign_in(client, "ada@example.com")
    roles, secret_change, url_change, created = entries(client)[:4]
    assert "user.roles" in roles and "roles: integrations-manage → integrations-manage, roster-manage" in roles
    assert "display_name" not in roles  # unchanged fields are left out
    assert "provider_settings.shared_secret: secret changed (value never shown)" in secret_change
    assert "launch_window_minutes" not in secret_change and "server_url" not in secret_change
    assert "launch_window_minutes: 15 → 30" in url_change
    assert ("provider_settings.server_url: https://bbb.example.org/bigbluebutton/ → "
            "https://bbb2.example.org/bigbluebutton/") in url_change
    assert "provider_settings.shared_secret" not in url_change  # the same secret, kept: not a change
    assert "connection.create" in created and "provider_settings.shared_secret: secret set" in created
    assert shared_secret not in client.get("/console/audit").text


def test_the_log_filters_by_who_what_connection_session_and_day(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)  # at NOW
    acme = db.create_connection("acme")  # connection changes are dated by the wall clock, later than NOW
    db.create_connection("acme_2")  # an underscore: a LIKE wildcard, which must match only itself
    with db.session() as s, s.begin():
        connections.set_active(s, "acme", False, actor="ada@example.com")
        connections.set_active(s, "acme_2", False, actor="bob@example.com")
        connections.set_active(s, "acme", True, actor="ada@example.com")
    assert Lms(client, acme["username"], acme["password"]).create_session(
        session_body("s-1", start=NOW + timedelta(days=4))).status_code == 200  # at NOW, by the app's clock
    with db.session() as s, s.begin():
        console_users.set_roles(s, NOW + timedelta(days=5), "cli:root", "ada@example.com",
                                ["integrations-manage", "roster-manage"])
    sign_in(client, "ada@example.com")

    by_bob = entries(client, "?who=bob%40example.com")
    assert len(by_bob) == 1 and "connection.deactivate" in by_bob[0] and "acme_2" in by_bob[0]
    created = entries(client, "?what=lms.session.create")
    assert len(created) == 1 and "session:acme/s-1" in created[0] and "lms:acme" in created[0]
    acme_rows = entries(client, "?connection=acme")
    assert [row.split()[3] for row in acme_rows] == ["lms.session.create", "connection.activate",
                                                      "connection.deactivate", "connection.create"]
    assert not any("acme_2" in row for row in acme_rows)
    assert len(entries(client, "?session=s-1")) == 1 and len(entries(client, "?connection=acme&session=s-1")) == 1
    assert entries(client, "?connection=acme_2&session=s-1") == []
    later = entries(client, f"?from={(NOW + timedelta(days=5)).date()}&until={(NOW + timedelta(days=5)).date()}")
    assert [row.split()[3] for row in later] == ["user.roles"]
    on_the_day = entries(client, f"?from={NOW.date()}&until={NOW.date()}")
    assert [row.split()[3] for row in on_the_day] == ["lms.session.create", "user.create"]
    form = client.get("/console/audit?who=bob%40example.com").text
    assert '<option value="bob@example.com" selected>' in form  # the filter stays as chosen

    wrong = client.get("/console/audit?from=yesterday&until=2026-03-01&who=bob%40example.com")
    assert wrong.status_code == 400
    assert "From must be a date like 2026-03-02, not &#39;yesterday&#39;" in wrong.text
    assert 'value="yesterday"' in wrong.text and 'aria-invalid="true"' in wrong.text
    assert '<option value="bob@example.com" selected>' in wrong.text and "data-audit" not in wrong.text
    backwards = client.get("/console/audit?from=2026-03-05&until=2026-03-01")
    assert backwards.status_code == 400 and "Until (2026-03-01) is before From (2026-03-05)" in backwards.text


def test_the_log_pages_newest_first_with_newer_and_older_links(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    db.create_connection("acme")
    with db.session() as s, s.begin():
        for minutes in range(5, 12):  # 7 changes, each told apart by its value
            connections.change(s, db.keyring, "acme", {"launch_window_minutes": str(minutes)}, actor="ada")
    sign_in(client, "ada@example.com")

    def page_of(url: str) -> tuple[list[str], str | None, str | None]:
        answer = client.get(url).text
        shown = [re.search(r"launch_window_minutes: \d+ → (\d+)", row).group(1)  # type: ignore[union-attr]
                 for row in entries(client, url.removeprefix("/console/audit"))]
        newer = re.search(r'<a href="([^"]+)" rel="prev">', answer)
        older = re.search(r'<a href="([^"]+)" rel="next">', answer)
        return shown, unescape(newer.group(1)) if newer else None, unescape(older.group(1)) if older else None

    first, newer, older = page_of("/console/audit?what=connection.change&size=3")
    assert first == ["11", "10", "9"] and newer is None and older is not None
    assert "what=connection.change" in older and "size=3" in older
    second, newer, older = page_of(older)
    assert second == ["8", "7", "6"] and newer is not None and older is not None
    third, newer_than_third, end = page_of(older)
    assert third == ["5"] and end is None and newer_than_third is not None
    back, _, _ = page_of(newer_than_third)
    assert back == ["8", "7", "6"]
    assert page_of(newer)[0] == ["11", "10", "9"]
    everything = entries(client)
    assert len(everything) == 9 and "connection.create" in everything[-2] and "user.create" in everything[-1]
    assert 'rel="next"' not in client.get("/console/audit").text


def test_lms_attendance_reads_stay_out_of_the_log_and_on_the_timeline(client: TestClient, db: Db, lms: Lms,
                                                                        clock: Any) -> None:
    assert lms.create_session(session_body("sess-1", start=NOW + timedelta(minutes=5))).status_code == 200
    link = lms.launch("sess-1", "jane@example.com").json()["data"]["joinUrl"]
    assert client.get(link.replace("http://testserver", "")).status_code == 302
    clock.set(NOW + timedelta(hours=3))
    for _ in range(3):  # an LMS polls
        assert lms.attendees("sess-1").status_code == 200
    assert audit_count(db, "lms.attendance") == 0
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE, ConsoleRole.ROSTER_MANAGE)
    sign_in(client, "ada@example.com")
    assert not any("lms.attendance" in row for row in entries(client))
    assert any("lms.session.create" in row for row in entries(client))
    timeline = client.get("/console/sessions/acme/sess-1").text
    assert timeline.count("lms.attendance (correlationId corr-123)") == 3


def test_an_override_records_the_decision_it_replaces(client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    assert lms.create_session(session_body("sess-1", start=NOW + timedelta(minutes=5))).status_code == 200
    link = lms.launch("sess-1", "Jane@Example.com").json()["data"]["joinUrl"]
    assert client.get(link.replace("http://testserver", "")).status_code == 302
    clock.set(NOW + timedelta(hours=3))
    assert lms.attendees("sess-1").json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE, ConsoleRole.ROSTER_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/sessions/acme/sess-1").text)
    runner = JobRunner(client.app.state.ctx, "test")  # type: ignore[attr-defined]

    def override(**form: str) -> None:
        answer = client.post("/console/sessions/acme/sess-1/overrides", data={"csrf_token": token, **form})
        assert answer.status_code == 303, answer.text
        client.portal.call(runner.run_due)  # type: ignore[attr-defined]

    override(email="jane@example.com", attended="no", reason="launched, never joined")
    override(email="jane@example.com", attended="yes", reason="joined by phone")
    override(email="jane@example.com", attended="clear")
    cleared, second, first = entries(client, "?what=attendance.override")
    assert "attended: yes → no" in first and "decided_by: the evidence → override by ada@example.com" in first
    assert "reason:" in first and "→ launched, never joined" in first
    assert "attended: no → yes" in second and "reason: launched, never joined → joined by phone" in second
    assert "decided_by: override by ada@example.com → the evidence (override cleared)" in cleared
    assert "attended: yes (removed)" in cleared
