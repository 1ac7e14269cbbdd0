"""The console's door: sign-in with lockout, the signed session cookie, CSRF on every change, the permission each
page needs (every console route is tried anonymously and with a role that lacks its permission), the audit log."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, b64, session_body
from viltbridge.app import connections, console_users
from viltbridge.core.permissions import ROLE_PERMISSIONS, ConsoleRole, Permission
from viltbridge.web.console import auth
from viltbridge.web.console.account import router as account_router
from viltbridge.web.console.audit import router as audit_router
from viltbridge.web.console.connections import router as connections_router
from viltbridge.web.console.instructor import router as instructor_router
from viltbridge.web.console.routes import router as console_router
from viltbridge.web.console.sessions import router as sessions_router

PASSWORD = "correct horse battery staple"


def make_user(db: Db, email: str, *roles: ConsoleRole) -> None:
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", email, [role.value for role in roles], password=PASSWORD)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    form = client.get("/console/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post("/console/login", data={"email": email, "password": password,
                                               "login_csrf": token.group(1), "next": "/console/connections"})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_anonymous_browsers_are_sent_to_sign_in_and_back(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    first = client.get("/console/connections")
    assert first.status_code == 303 and first.headers["location"] == "/console/login?next=/console/connections"
    signed = sign_in(client, "ada@example.com")
    assert signed.status_code == 303 and signed.headers["location"] == "/console/connections"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert client.get("/console/connections").status_code == 200


def test_sign_in_never_redirects_off_the_console(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    form = client.get("/console/login?next=https://evil.example/steal")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert token and "evil.example" not in form.text
    signed = client.post("/console/login", data={"email": "ada@example.com", "password": PASSWORD,
                                                 "login_csrf": token.group(1), "next": "//evil.example/x"})
    assert signed.headers["location"] == "/console"


def test_a_sign_in_form_from_elsewhere_is_refused(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    refused = client.post("/console/login", data={"email": "ada@example.com", "password": PASSWORD,
                                                  "login_csrf": "forged"})
    assert refused.status_code == 403 and "expired" in refused.text and auth.COOKIE not in refused.cookies


def test_five_wrong_passwords_lock_the_account_for_a_quarter_hour(client: TestClient, db: Db, clock) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    for _ in range(console_users.MAX_FAILED_LOGINS):
        wrong = sign_in(client, "ada@example.com", "not the password")
        assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    locked = sign_in(client, "ada@example.com")  # the right password, too late
    assert locked.status_code == 401 and "locked for 15 minutes" in locked.text and auth.COOKIE not in locked.cookies
    clock.set(NOW + console_users.LOCKOUT + timedelta(seconds=1))
    assert sign_in(client, "ada@example.com").status_code == 303
    with db.engine.connect() as conn:
        actions = conn.exec_driver_sql("SELECT action FROM audit_log ORDER BY id").scalars().all()
    assert actions == ["user.create", "user.locked"]


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    unknown = sign_in(client, "nobody@example.com")
    wrong = sign_in(client, "ada@example.com", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong email or password." in unknown.text and "Wrong email or password." in wrong.text


def _as_anyone(page: str, email: str) -> str:
    """The page without what differs by design: the email typed in, echoed back, and the fresh form token."""
    return re.sub(r'name="login_csrf" value="[^"]+"', 'name="login_csrf" value="…"', page.replace(email, "EMAIL"))


def test_a_locked_account_answers_exactly_as_an_unknown_email(client: TestClient, db: Db) -> None:
    """Issue 13: after five wrong passwords a real account said "locked for N minutes" while an unknown email kept
    saying "Wrong email or password", which told anyone trying which emails have accounts."""
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    for attempt in range(console_users.MAX_FAILED_LOGINS + 2):
        known = sign_in(client, "ada@example.com", "not the password")
        unknown = sign_in(client, "nobody@example.com", "not the password")
        assert (known.status_code, _as_anyone(known.text, "ada@example.com")) == \
            (unknown.status_code, _as_anyone(unknown.text, "nobody@example.com")), f"attempt {attempt + 1}"
    with_the_right_password = sign_in(client, "ada@example.com")
    assert with_the_right_password.status_code == unknown.status_code == 401
    assert _as_anyone(with_the_right_password.text, "ada@example.com") == \
        _as_anyone(unknown.text, "nobody@example.com")
    assert "locked for 15 minutes" in unknown.text  # the one answer still tells a person what to do


def test_signing_out_refuses_a_copy_of_the_cookie_kept_from_before(client: TestClient, db: Db) -> None:
    """Issue 13: sign-out only deleted the cookie in the browser; a copy kept from before opened console pages for
    the rest of its 12 hours. Another browser of the same person stays signed in."""
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    other_browser = client.cookies.get(auth.COOKIE)
    client.cookies.clear()
    sign_in(client, "ada@example.com")
    kept = client.cookies.get(auth.COOKIE)
    assert kept and other_browser and kept != other_browser
    assert client.get("/console/connections").status_code == 200
    signed_out = client.post("/console/logout", data={"csrf_token": csrf_of(client.get("/console/account").text)})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/console/login"
    client.cookies.set(auth.COOKIE, kept, path="/console")
    replayed = client.get("/console/connections")
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/console/login")
    client.cookies.clear()
    client.cookies.set(auth.COOKIE, other_browser, path="/console")
    assert client.get("/console/connections").status_code == 200


def test_a_password_change_signs_every_browser_out(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    assert client.get("/console/connections").status_code == 200
    with db.session() as s, s.begin():
        console_users.set_password(s, NOW, "test", "ada@example.com", "another long passphrase")
    assert client.get("/console/connections").status_code == 303


def test_a_tampered_cookie_is_no_session(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    good = client.cookies.get(auth.COOKIE)
    assert good
    client.cookies.clear()
    payload, _, signature = good.rpartition(".")
    client.cookies.set(auth.COOKIE, f"{payload}.{signature[::-1]}")
    assert client.get("/console/connections").status_code == 303


def test_deactivating_needs_the_csrf_token_is_audited_and_the_lms_is_refused(client: TestClient, db: Db,
                                                                             lms: Lms) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    page = client.get("/console/connections/acme")
    assert page.status_code == 200 and "Deactivate" in page.text
    forged = client.post("/console/connections/acme/deactivate", data={})
    assert forged.status_code == 403 and "expired or came from another site" in forged.text
    done = client.post("/console/connections/acme/deactivate", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/console/connections/acme?did=deactivated"
    refused = lms.launch("sess-1", "jane@example.com")
    assert refused.status_code == 403 and "deactivated" in refused.text
    via_htmx = client.post("/console/connections/acme/activate",
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)})
    assert via_htmx.status_code == 204 and via_htmx.headers["HX-Redirect"] == "/console/connections/acme?did=activated"
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT actor, action, target FROM audit_log WHERE target = 'connection:acme' "
                                    "ORDER BY id").all()
    assert [tuple(row) for row in rows] == [
        ("cli", "connection.create", "connection:acme"),
        ("ada@example.com", "connection.deactivate", "connection:acme"),
        ("ada@example.com", "connection.activate", "connection:acme")]
    history = client.get("/console/connections/acme").text
    assert "connection.deactivate" in history and "ada@example.com" in history
    assert b64("x")  # the LMS helper is in use above: keep the import honest


def test_the_audit_log_never_holds_a_secret(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    shared_secret = "bbb-shared-secret-9f3e0c1d2b4a"
    created = db.create_connection("acme-bbb", "bbb", server_url="https://bbb.example.org/bigbluebutton/",
                                   shared_secret=shared_secret)
    with db.session() as s, s.begin():
        connections.change(s, db.keyring, "acme-bbb", {"shared_secret": shared_secret + "-rotated"}, actor="ada")
        connections.rotate_secret(s, "acme-bbb", actor="ada")
    with db.engine.connect() as conn:
        logged = " ".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM audit_log").all())
    assert "connection.change" in logged and "connection.rotate-secret" in logged
    for secret in (created["password"], PASSWORD, shared_secret):
        assert secret not in logged
    sign_in(client, "ada@example.com")
    page = client.get("/console/audit").text
    assert "connection.rotate-secret" in page and shared_secret not in page and created["password"] not in page


# --- the permission table: every console route, every role --------------------------------------------------


def _console_routes() -> list[tuple[str, str, Permission | None]]:
    """(method, path, permission) of every console route; None = any signed-in user."""
    found = []
    for route in [*console_router.routes, *connections_router.routes, *sessions_router.routes,
                  *instructor_router.routes, *audit_router.routes, *account_router.routes]:
        assert isinstance(route, APIRoute)
        if route.path in ("/console/login", "/console/ics/{user_id}/{token}.ics"):  # the feed's token is its key
            continue
        needed: Permission | None = None
        for dependency in route.dependant.dependencies:
            needed = getattr(dependency.call, "permission", needed)
        for method in route.methods:
            found.append((method, route.path, needed))
    return found


ROUTES = _console_routes()


def _concrete(path: str) -> str:
    return (path.replace("{name}", "acme").replace("{connection}", "acme").replace("{external_id}", "sess-1")
            .replace("{job_id}", "1").replace("{fmt}", "csv"))


def test_every_console_route_is_in_the_table() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/console/connections", "/console/connections/{name}/deactivate", "/console/audit", "/console/sessions",
            "/console/jobs/{job_id}/retry", "/console/exports/attendance.{fmt}", "/console/my-sessions",
            "/console/my-sessions/{connection}/{external_id}/launch"} <= paths
    assert all(permission is not None for _, path, permission in ROUTES
               if path not in ("/console", "/console/logout") and not path.startswith("/console/account"))


@pytest.mark.parametrize(("method", "path", "permission"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_anonymous_users_are_sent_to_sign_in(client: TestClient, method: str, path: str,
                                             permission: Permission | None) -> None:
    answer = client.request(method, _concrete(path))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")


def _roles_without(permission: Permission) -> list[ConsoleRole]:
    return [role for role, granted in ROLE_PERMISSIONS.items() if permission not in granted]


GUARDED = [(method, path, permission) for method, path, permission in ROUTES if permission is not None]


@pytest.mark.parametrize(("method", "path", "permission"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
def test_a_role_without_the_permission_gets_403(client: TestClient, db: Db, connection: dict[str, str],
                                                method: str, path: str, permission: Permission) -> None:
    lacking = _roles_without(permission)
    assert lacking, permission
    make_user(db, "weak@example.com", *lacking)  # every role that does not grant it, together
    sign_in(client, "weak@example.com")
    token = csrf_of(client.get("/console/account").text)
    answer = client.request(method, _concrete(path), headers={auth.CSRF_HEADER: token})
    assert answer.status_code == 403, answer.text
    assert permission.value in answer.text  # says which permission is missing
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT active FROM connections").scalar_one()  # nothing changed


def test_the_cli_creates_users_and_refuses_unknown_roles(run: Callable[..., Any]) -> None:
    created = run("user", "create", "Ada@Example.com", "--role", "integrations-manage", "--role", "roster-manage",
                  "--json")
    assert '"email": "ada@example.com"' in created.output and '"password"' in created.output
    wrong = run("user", "create", "bob@example.com", "--role", "admin", ok=False)
    assert wrong.exit_code == 1 and "Unknown role(s): admin" in wrong.output and "instructor" in wrong.output
    listed = run("user", "list", "--json")
    assert "integrations-manage" in listed.output and "bob@example.com" not in listed.output


def test_rotating_the_lms_secret_shows_it_once_and_retires_the_old(client: TestClient, db: Db, lms: Lms) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/connections/acme").text)
    rotated = client.post("/console/connections/acme/rotate-secret", data={"csrf_token": token})
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="new-secret">([^<]+)</code>', rotated.text)
    assert found
    assert lms.add_instructor("tess@example.com").status_code == 401  # the old secret no longer works
    fresh = Lms(client, lms.auth[0], found.group(1))
    assert fresh.add_instructor("tess@example.com").status_code == 200
    assert found.group(1) not in client.get("/console/audit").text


def test_settings_are_checked_as_a_whole_before_anything_is_saved(client: TestClient, db: Db,
                                                                 connection: dict[str, str]) -> None:
    make_user(db, "vic@example.com", ConsoleRole.VENDORS_UPDATE)
    sign_in(client, "vic@example.com")
    page = client.get("/console/connections/acme").text
    assert "Change settings" in page and "Rotate LMS secret" not in page and "Deactivate" not in page
    token = csrf_of(page)
    before = db.snapshot()
    wrong = client.post("/console/connections/acme/settings",
                        data={"csrf_token": token, "s.launch_window_minutes": "20", "s.room_url_template": "ftp://x"})
    assert wrong.status_code == 400 and "room_url_template" in wrong.text
    assert db.snapshot() == before
    right = client.post("/console/connections/acme/settings",
                        data={"csrf_token": token, "s.launch_window_minutes": "20"})
    assert right.status_code == 303
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT launch_window_minutes FROM connections").scalar_one() == 20
        assert conn.exec_driver_sql("SELECT actor FROM audit_log WHERE action = 'connection.change'"
                                    ).scalar_one() == "vic@example.com"


def test_a_session_can_be_cancelled_from_the_console(client: TestClient, db: Db, lms: Lms) -> None:
    assert lms.add_instructor("tess@example.com").status_code == 200
    assert lms.create_session(session_body("sess-1", InstructorEmails="tess@example.com")).status_code == 200
    make_user(db, "sam@example.com", ConsoleRole.SESSIONS_CANCEL)
    sign_in(client, "sam@example.com")
    page = client.get("/console/sessions/acme/sess-1").text
    assert "Cancel session" in page and "Re-sync attendance" not in page
    cancelled = client.post("/console/sessions/acme/sess-1/cancel", data={"csrf_token": csrf_of(page)})
    assert cancelled.status_code == 303
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT status FROM sessions").scalar_one() == "cancelled"
        assert conn.exec_driver_sql("SELECT actor FROM audit_log WHERE action = 'session.cancel'"
                                    ).scalar_one() == "sam@example.com"
    assert lms.launch("sess-1", "jane@example.com").status_code in (400, 404, 409)  # no joining a cancelled class


def test_an_override_needs_a_reason_wins_and_can_be_cleared(client: TestClient, db: Db, lms: Lms, clock) -> None:
    from viltbridge.jobs.runner import JobRunner

    assert lms.add_instructor("tess@example.com").status_code == 200
    assert lms.create_session(session_body("sess-1", start=NOW + timedelta(minutes=5),
                                           InstructorEmails="tess@example.com")).status_code == 200
    link = lms.launch("sess-1", "Jane@Example.com").json()["data"]["joinUrl"]
    assert client.get(link.replace("http://testserver", "")).status_code == 302  # she launched
    clock.set(NOW + timedelta(hours=3))
    assert lms.attendees("sess-1").json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]
    make_user(db, "ada@example.com", ConsoleRole.ROSTER_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/sessions/acme/sess-1").text)
    runner = JobRunner(client.app.state.ctx, "test")  # type: ignore[attr-defined]

    def override(**form: str) -> Any:
        return client.post("/console/sessions/acme/sess-1/overrides", data={"csrf_token": token, **form})

    assert "Say why" in override(email="jane@example.com", attended="no").text
    assert "not a learner" in override(email="kim@example.com", attended="no", reason="never here").text
    assert override(email="jane@example.com", attended="no", reason="launched, never joined (instructor)"
                    ).status_code == 303
    client.portal.call(runner.run_due)  # type: ignore[attr-defined]
    assert lms.attendees("sess-1").json()["data"]["attendees"] == []
    page = client.get("/console/sessions/acme/sess-1").text
    assert "set by ada@example.com (launched, never joined (instructor)); the evidence said" in page
    assert override(email="Jane@Example.com", attended="clear").status_code == 303
    client.portal.call(runner.run_due)  # type: ignore[attr-defined]
    assert lms.attendees("sess-1").json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_log WHERE action = 'attendance.override'"
                                    ).scalar_one() == 2


def test_the_connection_page_shows_health_and_the_host_pool(client: TestClient, db: Db, lms: Lms) -> None:
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    assert lms.add_instructor("cole@example.com", "Cole", "Helper").status_code == 200
    for n in range(2):
        assert lms.create_session(session_body(f"s-{n}", start=NOW + timedelta(days=n + 1),
                                               InstructorEmails="tess@example.com")).status_code == 200
    make_user(db, "vera@example.com", ConsoleRole.VENDORS_VIEW)
    sign_in(client, "vera@example.com")
    page = client.get("/console/connections/acme").text
    hosts = re.findall(r'<tr data-host="([^"]+)">.*?<td>(\d+)</td></tr>', page, flags=re.S)
    assert hosts == [("cole@example.com", "0"), ("tess@example.com", "2")]
    assert "2 queued" in page  # each part's attendance job, waiting for the class to end
    assert "Provider work owed</dt><dd>none" in page and "Deactivate" not in page  # view only


def test_a_connection_is_created_in_the_console_and_its_secret_shown_once(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    form = client.get("/console/connections/new").text
    token = csrf_of(form)
    wrong = client.post("/console/connections/new", data={"csrf_token": token, "name": "acme-bbb", "provider": "bbb",
                                                          "s.server_url": "not a url"})
    assert wrong.status_code == 400 and "server_url" in wrong.text and 'value="acme-bbb"' in wrong.text
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM connections").scalar_one() == 0
    made = client.post("/console/connections/new", data={"csrf_token": token, "name": "acme-link", "provider": "link",
                                                         "s.room_prefix": "acme"})
    assert made.status_code == 200
    secret = re.search(r'<code id="new-secret">([^<]+)</code>', made.text)
    assert secret
    lms = Lms(client, "acme-link", secret.group(1))
    assert lms.add_instructor("tess@example.com").status_code == 200
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT actor FROM audit_log WHERE action = 'connection.create'"
                                    ).scalar_one() == "ada@example.com"


def test_a_form_missing_a_field_gets_a_page_that_says_which(client: TestClient, db: Db,
                                                           connection: dict[str, str]) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/connections/new").text)
    answer = client.post("/console/connections/new", data={"csrf_token": token, "provider": "link"})
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    assert "name" in answer.text and "Check the form" in answer.text
