"""Each user's account page: the time zone (kept, audited, then used for their times), the password (the current
one required, a wrong one changing nothing and throttled like sign-in, other browsers signed out), the calendar feed
link for instructors, and signing out every browser; each form keeps its input with the message by the field."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from tests.web.test_console_access import PASSWORD, csrf_of, make_user, sign_in
from viltbridge.config import Settings
from viltbridge.core.permissions import ConsoleRole
from viltbridge.web.console import auth

THROTTLE_LIMIT = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_failure_limit": THROTTLE_LIMIT})


def user_row(db: Db, email: str) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT time_zone, password_hash, session_version FROM console_users "
                                    "WHERE email = :email"), {"email": email}).one()


def audit_of(db: Db, action: str) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT actor, target, before, after FROM audit_log WHERE action = :action "
                                         "ORDER BY id"), {"action": action}))


def browser_signed_in(client: TestClient, email: str) -> str:
    """The session cookie of another browser signed in as `email` (this test client's own cookie is replaced, so
    call it before signing the client in)."""
    return str(sign_in(client, email).cookies[auth.COOKIE])


def as_browser(client: TestClient, cookie: str, path: str) -> int:
    """The status of a GET sent with only that browser's session cookie."""
    return client.get(path, headers={"Cookie": f"{auth.COOKIE}={cookie}"}).status_code


def test_the_time_zone_is_kept_audited_and_used_for_the_users_times(client: TestClient, db: Db, lms: Lms) -> None:
    assert lms.add_instructor("tess@example.com").status_code == 200
    assert lms.create_session(session_body("s-1", start=NOW + timedelta(hours=2),
                                           InstructorEmails="tess@example.com")).status_code == 200
    make_user(db, "tess@example.com", ConsoleRole.INSTRUCTOR)
    sign_in(client, "tess@example.com")
    form = client.get("/console/account").text
    assert '<select id="time_zone" name="time_zone" required' in form and "<option selected>UTC</option>" in form
    token = csrf_of(form)

    wrong = client.post("/console/account/time-zone", data={"csrf_token": token, "time_zone": "Mars/Olympus_Mons"})
    assert wrong.status_code == 400
    assert "Unknown time zone &#39;Mars/Olympus_Mons&#39;" in wrong.text and 'id="time_zone-error"' in wrong.text
    assert '<option value="Mars/Olympus_Mons" selected>' in wrong.text  # what was typed is kept
    assert user_row(db, "tess@example.com").time_zone == "UTC" and audit_of(db, "user.time-zone") == []
    forged = client.post("/console/account/time-zone", data={"time_zone": "Asia/Tokyo"})
    assert forged.status_code == 403 and user_row(db, "tess@example.com").time_zone == "UTC"

    saved = client.post("/console/account/time-zone", data={"csrf_token": token, "time_zone": "Asia/Tokyo"})
    assert saved.status_code == 303 and saved.headers["location"] == "/console/account?saved=time-zone"
    said = client.get(saved.headers["location"]).text
    assert "Saved." in said and "times are now shown in Asia/Tokyo" in said
    assert "<option selected>Asia/Tokyo</option>" in said
    assert user_row(db, "tess@example.com").time_zone == "Asia/Tokyo"
    [(actor, target, before, after)] = audit_of(db, "user.time-zone")
    assert actor == "tess@example.com" and target == "user:tess@example.com"
    assert "UTC" in str(before) and "Asia/Tokyo" in str(after)
    starts = (NOW + timedelta(hours=2 + 9)).strftime("%Y-%m-%d %H:%M")  # Tokyo is UTC+9
    mine = client.get("/console/my-sessions").text
    assert "Times in Asia/Tokyo" in mine and starts in mine and 'href="/console/account"' in mine


def test_a_password_change_needs_the_current_one_and_signs_out_the_other_browsers(client: TestClient,
                                                                                     db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    other = browser_signed_in(client, "ada@example.com")
    sign_in(client, "ada@example.com")
    kept_copy = client.cookies[auth.COOKIE]
    token = csrf_of(client.get("/console/account").text)
    before = user_row(db, "ada@example.com")
    new = "a brand new passphrase for ada"

    def change(current: str, first: str, second: str) -> Any:
        return client.post("/console/account/password", data={
            "csrf_token": token, "current_password": current, "new_password": first, "new_password_again": second})

    wrong = change("not my password at all", new, new)
    assert wrong.status_code == 400 and 'id="current_password-error"' in wrong.text
    assert "That is not your current password: nothing was changed." in wrong.text
    assert new not in wrong.text and "not my password at all" not in wrong.text  # passwords never echoed
    short = change(PASSWORD, "short", "short")
    assert short.status_code == 400 and 'id="new_password-error"' in short.text and "too short" in short.text
    differ = change(PASSWORD, new, new + "!")
    assert differ.status_code == 400 and 'id="new_password_again-error"' in differ.text
    assert "The two new passwords differ" in unescape(differ.text)
    assert 'minlength="12"' in differ.text and differ.text.count("required") >= 3
    assert user_row(db, "ada@example.com") == before  # nothing changed
    assert as_browser(client, other, "/console/connections") == 200

    changed = change(PASSWORD, new, new)
    assert changed.status_code == 303 and changed.headers["location"] == "/console/account?saved=password"
    said = client.get("/console/account?saved=password")
    assert said.status_code == 200 and "Password changed." in said.text  # this browser stays signed in
    assert user_row(db, "ada@example.com").session_version == before.session_version + 1
    assert as_browser(client, other, "/console/connections") == 303  # the other browser must sign in again
    assert as_browser(client, kept_copy, "/console/connections") == 303  # so must a copy of this one's old cookie
    assert sign_in(client, "ada@example.com").status_code == 401  # the old password is gone
    assert sign_in(client, "ada@example.com", new).status_code == 303
    [(actor, _, _, after)] = audit_of(db, "user.password")[-1:]
    assert actor == "ada@example.com" and "all others signed out" in str(after) and new not in str(after)


def test_wrong_current_passwords_are_throttled_like_sign_in(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/account").text)
    new = "a brand new passphrase for ada"
    form = {"csrf_token": token, "current_password": "guess", "new_password": new, "new_password_again": new}
    for _ in range(THROTTLE_LIMIT):
        assert client.post("/console/account/password", data=form).status_code == 400
    refused = client.post("/console/account/password", data={**form, "current_password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert 'id="current_password-error"' in refused.text
    assert sign_in(client, "ada@example.com", new).status_code in (401, 429)  # unchanged


def test_sign_out_everywhere_ends_every_session_and_replaces_the_feed_link(client: TestClient, db: Db) -> None:
    make_user(db, "tess@example.com", ConsoleRole.INSTRUCTOR)
    other = browser_signed_in(client, "tess@example.com")
    sign_in(client, "tess@example.com")
    kept_copy = client.cookies[auth.COOKIE]
    page = client.get("/console/account").text
    feed = re.search(r'<a id="feed-url" href="http://testserver(/console/ics/[^"]+)">', page)
    assert feed and 'data-copy="http://testserver' in page and "Copy the link" in page
    assert client.get(feed.group(1)).status_code == 200
    assert client.post("/console/account/sign-out-everywhere").status_code == 403  # no CSRF token: nothing ends
    assert as_browser(client, other, "/console/my-sessions") == 200

    ended = client.post("/console/account/sign-out-everywhere", data={"csrf_token": csrf_of(page)})
    assert ended.status_code == 303 and ended.headers["location"] == "/console/login"
    assert client.get("/console/my-sessions").status_code == 303
    assert as_browser(client, other, "/console/my-sessions") == 303
    assert as_browser(client, kept_copy, "/console/account") == 303  # a copy of the cookie opens nothing either
    assert client.get(feed.group(1)).status_code == 404  # the old feed link is retired
    assert sign_in(client, "tess@example.com").status_code == 303  # signing in again works
    new_page = client.get("/console/account").text
    assert feed.group(1) not in new_page and 'id="feed-url"' in new_page
    [(actor, _, _, after)] = audit_of(db, "user.sign-out-everywhere")
    assert actor == "tess@example.com" and "all signed out" in str(after)


def test_an_admin_without_classes_has_no_feed_link(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    page = client.get("/console/account").text
    assert page.count("<h1") == 1 and "Your account" in page
    assert 'id="feed-url"' not in page and "Sign out everywhere" in page and "Change the password" in page


def test_sign_out_everywhere_from_htmx_redirects_to_sign_in(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    token = csrf_of(client.get("/console/account").text)
    ended = client.post("/console/account/sign-out-everywhere", headers={"HX-Request": "true", auth.CSRF_HEADER: token})
    assert ended.status_code == 204 and ended.headers["HX-Redirect"] == "/console/login"
    assert f"{auth.COOKIE}=" in ended.headers["set-cookie"]  # the cookie is cleared in this browser too
    assert client.get("/console/account").status_code == 303
