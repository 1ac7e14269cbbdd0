"""The connections pages an admin watches and changes: health at a glance (one verdict for the list and the page,
from real provider faults), owed work retried or cancelled (audited, admin only, CSRF), and settings forms drawn
from each provider's settings model that keep what was typed, show each problem next to its field and never send a
secret back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from tests.providers.conftest import zoom_settings, zoom_simulator  # noqa: F401 - the simulator fixture
from tests.web.test_console_access import csrf_of, make_user, sign_in
from viltbridge.core.permissions import ConsoleRole
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.http import account_breaker
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.store.tables import ConnectionRow

TESS = "tess@example.com"


@pytest.fixture
def zoom(client: TestClient, db: Db, zoom_simulator: ZoomSimulator) -> Iterator[Lms]:  # noqa: F811
    """The LMS with a `zoom` connection `acme-zoom` on the simulator, Tess a Zoom host and an instructor."""
    zoom_simulator.reset(start=NOW)
    zoom_simulator.state.seed_user(TESS, first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    yield lms
    zoom_simulator.state.clear_faults()


def _verdict(html: str) -> tuple[str, str]:
    """(level, the reasons in words) from a health badge and the reasons beside it; the level also in words."""
    level = re.search(r'<span class="health health-(\w+)"><span aria-hidden="true">.</span> (\w+)</span>', html)
    assert level and level.group(1) == level.group(2), html
    reason = re.search(r'<span class="reason">(.*?)</span>', html, flags=re.S)
    return level.group(1), reason.group(1) if reason else "no problem seen"


def listed_health(client: TestClient, name: str) -> tuple[str, str]:
    page = client.get("/console/connections")
    assert page.status_code == 200
    row = re.search(rf'<tr data-connection="{name}" data-health="(\w+)">(.*?)</tr>', page.text, flags=re.S)
    assert row, page.text
    return _verdict(row.group(2))


def page_verdict(client: TestClient, name: str) -> tuple[str, str]:
    page = client.get(f"/console/connections/{name}")
    found = re.search(r'<p id="verdict" data-health="\w+">(.*?)</p>', page.text, flags=re.S)
    assert found, page.text
    return _verdict(found.group(1))


def jobs(db: Db) -> list[tuple[int, str, str, int]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT id, kind, state, attempts FROM jobs ORDER BY id")]


def audited(db: Db, action: str) -> list[tuple[str, str]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.text("SELECT actor, target FROM audit_log WHERE action = :action ORDER BY id"), {"action": action})]


def run_due(client: TestClient) -> dict[str, int]:
    runner = JobRunner(client.app.state.ctx, "test-worker")  # type: ignore[attr-defined]
    return dict(client.portal.call(runner.run_due))  # type: ignore[union-attr]


def token_endpoint_fails(sim: ZoomSimulator) -> None:
    """Zoom's token endpoint answers 503 and every token issued so far is revoked: the next call must renew and
    cannot."""
    sim.state.inject_fault(503, count=100_000, path="/oauth/token")
    sim.state.revoke_tokens()


def test_a_failing_token_renewal_shows_in_the_list_and_on_the_page_alike(client: TestClient, db: Db, zoom: Lms,
                                                                         zoom_simulator: ZoomSimulator,  # noqa: F811
                                                                         clock: Any) -> None:
    db.create_connection("acme", "link")
    make_user(db, "vera@example.com", ConsoleRole.VENDORS_VIEW)
    sign_in(client, "vera@example.com")
    assert listed_health(client, "acme-zoom") == page_verdict(client, "acme-zoom") == ("ok", "no problem seen")
    link = client.get("/console/connections/acme").text  # a link connection's settings, defaults included
    shown = re.search(r'<dl class="facts" id="provider-settings">(.*?)</dl>', link, flags=re.S)
    assert shown and "<code>https://meet.jit.si/{room}</code> (default)" in shown.group(1)
    assert "<code>room_prefix</code>" in shown.group(1) and 'id="settings-form"' not in link  # view only
    zoom_page = client.get("/console/connections/acme-zoom").text
    assert '<code>client_secret</code></dt><dd><span class="tag">set</span>' in zoom_page

    token_endpoint_fails(zoom_simulator)
    saved = zoom.create_session(session_body("z-1", start=NOW + timedelta(days=1), InstructorEmails=TESS))
    assert saved.status_code == 200, saved.text  # saved; the meeting is owed to Zoom
    level, said = listed_health(client, "acme-zoom")
    assert level == "failing" and "token renewal failing" in said and "1 part waiting for meeting work" in said
    assert page_verdict(client, "acme-zoom") == (level, said)  # one judgement, not a second opinion
    assert listed_health(client, "acme")[0] == "ok"  # the other connection is not dragged down

    clock.set(NOW + timedelta(minutes=5))
    run_due(client)  # the meeting.sync job meets the same outage and backs off
    sync = [job for job in jobs(db) if job[1] == "meeting.sync"]
    assert sync and sync[0][2] == "queued" and sync[0][3] >= 1
    assert "1 job owed (retrying after errors)" in listed_health(client, "acme-zoom")[1]
    page = client.get("/console/connections/acme-zoom").text
    row = re.search(rf'<tr data-job="{sync[0][0]}" data-state="queued"[^>]*>(.*?)</tr>', page, flags=re.S)
    assert row and "meeting.sync" in row.group(1) and "Safety basics" in row.group(1) and " UTC" in row.group(1)
    assert "/retry" not in page and "/cancel" not in page  # vendors-view sees the work, does not act on it

    zoom_simulator.state.clear_faults()
    breaker = account_breaker("zoom", zoom_simulator.config.account_id)
    breaker.open()  # as after five outages in a row
    assert "circuit breaker open" in listed_health(client, "acme-zoom")[1]
    breaker.close()
    clock.set(NOW + timedelta(hours=2))
    assert run_due(client).get("done") == 1
    assert listed_health(client, "acme-zoom") == page_verdict(client, "acme-zoom") == ("ok", "no problem seen")


def owed_row(client: TestClient, name: str, job_id: int) -> str:
    page = client.get(f"/console/connections/{name}").text
    row = re.search(rf'<tr data-job="{job_id}" data-state="\w+"[^>]*>.*?</tr>', page, flags=re.S)
    assert row, page
    return row.group(0)


def run_after(db: Db, job_id: int) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT run_after FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()


def test_an_admin_retries_owed_work_now_and_cancels_it_for_good(client: TestClient, db: Db, zoom: Lms,
                                                                zoom_simulator: ZoomSimulator,  # noqa: F811
                                                                clock: Any) -> None:
    other = db.create_connection("acme", "link")
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    assert zoom.create_session(session_body("z-2", start=NOW + timedelta(days=1),
                                            InstructorEmails=TESS)).status_code == 200
    [(job_id, _, state, _)] = [job for job in jobs(db) if job[1] == "meeting.sync"]
    assert state == "queued"
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    page = client.get("/console/connections/acme-zoom").text
    row = owed_row(client, "acme-zoom", job_id)
    assert "Retry now" in row and "Cancel…" in row and "The meeting is not created, changed or cancelled" in row
    token = csrf_of(page)

    waiting_until = run_after(db, job_id)
    forged = client.post(f"/console/connections/acme-zoom/jobs/{job_id}/retry", data={})
    assert forged.status_code == 403 and run_after(db, job_id) == waiting_until

    clock.set(NOW + timedelta(seconds=5))
    retried = client.post(f"/console/connections/acme-zoom/jobs/{job_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/console/connections/acme-zoom?did=retried&job={job_id}#owed"
    assert run_after(db, job_id) != waiting_until
    next_run = NOW + timedelta(seconds=5)  # on the viewer's clock, the UTC instant in the <time> element
    assert f'datetime="{next_run:%Y-%m-%dT%H:%M:%SZ}"' in owed_row(client, "acme-zoom", job_id)
    assert audited(db, "job.retry") == [("ada@example.com", f"job:{job_id}")]
    shown = client.get(retried.headers["location"].split("#")[0]).text
    assert f"Job #{job_id} (meeting.sync): queued to run now." in shown

    # Another connection's page cannot reach this job.
    elsewhere = client.post(f"/console/connections/{other['name']}/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert elsewhere.status_code == 404 and f"has no job #{job_id}" in elsewhere.text
    assert [job[2] for job in jobs(db) if job[0] == job_id] == ["queued"]

    cancelled = client.post(f"/console/connections/acme-zoom/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert [job[2] for job in jobs(db) if job[0] == job_id] == ["cancelled"]
    assert audited(db, "job.cancel") == [("ada@example.com", f"job:{job_id}")]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT meeting_pending FROM sessions").scalar_one() is None
        before = conn.exec_driver_sql("SELECT before FROM audit_log WHERE action = 'job.cancel'").scalar_one()
    assert "queued" in str(before)
    shown = client.get(cancelled.headers["location"].split("#")[0]).text
    assert f"Job #{job_id} (meeting.sync) cancelled: it will not run." in shown

    zoom_simulator.state.clear_faults()
    clock.set(NOW + timedelta(hours=3))
    assert run_due(client) == {}  # the runner never runs a cancelled job
    assert [job[2] for job in jobs(db) if job[0] == job_id] == ["cancelled"]
    assert listed_health(client, "acme-zoom") == ("degraded", "last call failed")  # nothing owed any more
    again = client.post(f"/console/connections/acme-zoom/jobs/{job_id}/cancel", data={"csrf_token": token})
    refusal = re.search(r'<p class="error" role="alert" id="problem">(.*?)</p>', again.text, flags=re.S)
    assert again.status_code == 400 and refusal and "is cancelled now, so it cannot be cancelled" in refusal.group(1)

    # A cancelled job can still be run after all.
    assert client.post(f"/console/connections/acme-zoom/jobs/{job_id}/retry",
                       data={"csrf_token": token}).status_code == 303
    assert run_due(client).get("done") == 1


def field(page: str, key: str) -> str:
    found = re.search(rf'<div class="field[^"]*" data-setting="{key}">.*?</div>', page, flags=re.S)
    assert found, page
    return found.group(0)


def test_the_link_settings_form_keeps_what_was_typed_and_says_what_is_wrong_next_to_it(client: TestClient, db: Db,
                                                                                      connection: dict[str, str]
                                                                                      ) -> None:
    make_user(db, "vic@example.com", ConsoleRole.VENDORS_UPDATE)
    sign_in(client, "vic@example.com")
    page = client.get("/console/connections/acme").text
    template = field(page, "room_url_template")
    assert 'value="https://meet.jit.si/{room}"' in template and "{room} is replaced by the room" in template
    assert "Default: <code>https://meet.jit.si/{room}</code>" in template
    assert '<select id="s-pass_display_name"' in field(page, "pass_display_name")
    assert " required" in field(page, "launch_window_minutes")
    token = csrf_of(page)
    before = db.snapshot()

    wrong = client.post("/console/connections/acme/settings", data={
        "csrf_token": token, "s.room_url_template": "ftp://x/{room}", "s.room_prefix": "typed-prefix",
        "s.launch_window_minutes": "20", "s.pass_display_name": "false"})
    assert wrong.status_code == 400 and db.snapshot() == before
    bad = field(wrong.text, "room_url_template")
    assert 'value="ftp://x/{room}"' in bad and 'aria-invalid="true"' in bad and "must be an http(s) URL" in bad
    assert 'value="typed-prefix"' in field(wrong.text, "room_prefix")  # what was typed stays
    assert 'value="20"' in field(wrong.text, "launch_window_minutes")
    assert '<option value="false" selected>' in field(wrong.text, "pass_display_name")
    assert "Error" not in field(wrong.text, "room_prefix")

    minutes = client.post("/console/connections/acme/settings", data={"csrf_token": token,
                                                                        "s.launch_window_minutes": "x"})
    assert minutes.status_code == 400 and "must be a whole number" in field(minutes.text, "launch_window_minutes")

    right = client.post("/console/connections/acme/settings", data={
        "csrf_token": token, "s.room_url_template": "https://meet.example.org/{room}", "s.room_prefix": "typed-prefix",
        "s.launch_window_minutes": "15", "s.pass_display_name": "true", "s.automatic_cancellation": "true",
        "s.extended_options": "false"})
    assert right.status_code == 303 and right.headers["location"] == "/console/connections/acme?did=saved"
    saved = client.get(right.headers["location"]).text
    assert "Saved. The new settings are in use from now on." in saved
    assert 'value="typed-prefix"' in field(saved, "room_prefix")
    with db.engine.connect() as conn:
        [(actor, changed)] = conn.exec_driver_sql(
            "SELECT actor, after FROM audit_log WHERE action = 'connection.change'").all()
    assert actor == "vic@example.com" and "meet.example.org" in str(changed)

    unchanged = client.post("/console/connections/acme/settings", data={
        "csrf_token": token, "s.room_url_template": "https://meet.example.org/{room}", "s.room_prefix": "typed-prefix",
        "s.launch_window_minutes": "15"})
    assert unchanged.headers["location"] == "/console/connections/acme?did=unchanged"
    assert len(audited(db, "connection.change")) == 1  # nothing saved, nothing audited


def test_secrets_are_write_only_set_or_not_set_and_never_sent_back(client: TestClient, db: Db,
                                                                  zoom_simulator: ZoomSimulator  # noqa: F811
                                                                  ) -> None:
    settings = zoom_settings(zoom_simulator)
    db.create_connection("acme-zoom", "zoom", **settings)
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    page = client.get("/console/connections/acme-zoom").text
    secret = field(page, "client_secret")
    assert 'type="password" value=""' in secret and ">set</span>" in secret and " required" not in secret
    assert settings["client_secret"] not in page and settings["webhook_secret_token"] not in page
    token = csrf_of(page)

    typed_secret = "a-new-secret-typed-by-ada-0137"
    wrong = client.post("/console/connections/acme-zoom/settings", data={
        "csrf_token": token, "s.client_secret": typed_secret, "s.plan": "free", "s.learner_links": "registrant"})
    assert wrong.status_code == 400 and "learner_links=registrant needs meeting registration" in wrong.text
    assert typed_secret not in wrong.text and settings["client_secret"] not in wrong.text
    assert '<option value="free" selected>' in field(wrong.text, "plan")

    kept = client.post("/console/connections/acme-zoom/settings", data={
        "csrf_token": token, "s.client_secret": "", "s.plan": "business"})
    assert kept.status_code == 303
    with db.session() as s:
        stored = db.keyring.decrypt_json(s.scalars(sa.select(ConnectionRow)).one().provider_settings)
    assert stored["client_secret"] == settings["client_secret"] and stored["plan"] == "business"
    with db.engine.connect() as conn:
        logged = str(conn.exec_driver_sql("SELECT before, after FROM audit_log").all())
    assert settings["client_secret"] not in logged


def test_a_new_connection_form_is_the_providers_and_keeps_what_was_typed(client: TestClient, db: Db,
                                                                        zoom_simulator: ZoomSimulator  # noqa: F811
                                                                        ) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    form = client.get("/console/connections/new?provider=zoom").text
    assert "<legend>zoom settings</legend>" in form
    assert " required" in field(form, "account_id") and " required" in field(form, "client_secret")
    assert "<option value=\"pro\" selected>" in field(form, "plan")
    assert client.get("/console/connections/new").text.count("<legend>link settings</legend>") == 1
    token = csrf_of(form)
    settings = zoom_settings(zoom_simulator)
    typed = {f"s.{key}": value for key, value in settings.items() if key != "client_id"}
    wrong = client.post("/console/connections/new", data={"csrf_token": token, "name": "acme-zoom",
                                                          "provider": "zoom", **typed})
    assert wrong.status_code == 400
    assert "missing (required)" in field(wrong.text, "client_id")
    assert f'value="{settings["account_id"]}"' in field(wrong.text, "account_id")
    assert 'value="acme-zoom"' in wrong.text
    assert settings["client_secret"] not in wrong.text and "type them again" in wrong.text
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM connections").scalar_one() == 0

    taken = db.create_connection("acme-taken", "link")
    named = client.post("/console/connections/new", data={"csrf_token": token, "name": taken["name"],
                                                          "provider": "link"})
    assert named.status_code == 400 and "exists already" in named.text
    assert 'id="connection-name-error"' in named.text

    made = client.post("/console/connections/new", data={"csrf_token": token, "name": "acme-zoom",
                                                         "provider": "zoom", **typed,
                                                         "s.client_id": settings["client_id"]})
    assert made.status_code == 200 and "Connection acme-zoom created" in made.text
    assert re.search(r'<code id="new-secret">([^<]+)</code>', made.text)


def test_rotating_with_a_secret_too_short_says_so_next_to_it_and_changes_nothing(client: TestClient, db: Db,
                                                                                 lms: Lms) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/connections/acme").text)
    short = "short-secret-1"
    refused = client.post("/console/connections/acme/rotate-secret", data={"csrf_token": token, "new_secret": short})
    assert refused.status_code == 400 and short not in refused.text
    assert "must be at least 16 characters" in re.search(
        r'<p class="field-error" id="new-secret-choice-error">(.*?)</p>', refused.text, flags=re.S).group(1)  # type: ignore[union-attr]
    assert '<details class="confirm rotate" open' in refused.text
    assert lms.add_instructor(TESS).status_code == 200  # the old secret still works
    assert audited(db, "connection.rotate-secret") == []

    chosen = "a-long-enough-chosen-secret-4c1e"
    rotated = client.post("/console/connections/acme/rotate-secret", data={"csrf_token": token, "new_secret": chosen})
    assert rotated.status_code == 200 and f'<code id="new-secret">{chosen}</code>' in rotated.text
    assert lms.add_instructor(TESS).status_code == 401
    assert Lms(client, lms.auth[0], chosen).add_instructor(TESS).status_code == 200
    assert audited(db, "connection.rotate-secret") == [("ada@example.com", "connection:acme")]


def test_a_dead_job_degrades_the_connection_until_it_is_retried_and_done(client: TestClient, db: Db, zoom: Lms,
                                                                        zoom_simulator: ZoomSimulator,  # noqa: F811
                                                                        clock: Any) -> None:
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    assert zoom.create_session(session_body("z-3", start=NOW + timedelta(days=1),
                                            InstructorEmails=TESS)).status_code == 200
    zoom_simulator.state.seed_user(TESS, type=1)  # meanwhile her licence was taken away: Zoom will refuse
    zoom_simulator.state.clear_faults()
    account_breaker("zoom", zoom_simulator.config.account_id).close()
    clock.set(NOW + timedelta(minutes=5))
    assert run_due(client) == {"dead": 1}
    [(job_id, _, _, _)] = [job for job in jobs(db) if job[1] == "meeting.sync"]
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    level, said = listed_health(client, "acme-zoom")
    assert level == "degraded" and "1 job dead (out of attempts)" in said
    row = owed_row(client, "acme-zoom", job_id)
    assert 'data-state="dead"' in row and "licen" in row.lower() and "not scheduled" in row and "1 of 12" in row

    zoom_simulator.state.seed_user(TESS, type=2)  # the licence is back
    token = csrf_of(client.get("/console/connections/acme-zoom").text)
    assert client.post(f"/console/connections/acme-zoom/jobs/{job_id}/retry",
                       data={"csrf_token": token}).status_code == 303
    assert [job[2:] for job in jobs(db) if job[0] == job_id] == [("queued", 0)]  # fresh attempts
    assert run_due(client).get("done") == 1
    assert listed_health(client, "acme-zoom") == ("ok", "no problem seen")
