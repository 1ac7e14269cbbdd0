"""The console in a real browser: Debian's Chromium driven by Playwright against the running server. An admin signs
in, deactivates and activates a connection (confirming the dialog), sees a session the LMS created, follows a
learner's launch into the timeline, exports CSV; an instructor sees only their sessions, a conflict warning and a
calendar feed that parses. Screenshots of the main pages go to `VILTBRIDGE_ARTIFACTS` (default build/screenshots)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from icalendar import Calendar

from tests.conftest import NOW, Db, service_unavailable, session_body
from viltbridge.app import console_users

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("VILTBRIDGE_ARTIFACTS", "build/screenshots"))
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        service_unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/console")
    assert "/console/login" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def lms_client(base: str, credentials: dict[str, str]) -> httpx2.Client:
    return httpx2.Client(base_url=base, auth=(credentials["username"], credentials["password"]), timeout=20)


def b64(email: str) -> str:
    return base64.b64encode(email.encode()).decode()


def test_an_admin_and_an_instructor_in_the_browser(browser: Any, live_server: str, db: Db, clock: Any) -> None:
    acme = db.create_connection("acme", "link")
    other = db.create_connection("acme-b", "link")
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["integrations-manage", "roster-manage"],
                             password=PASSWORD, display_name="Ada Admin")
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password=PASSWORD,
                             display_name="Tess Teacher", time_zone="Europe/Berlin")
    start = NOW + timedelta(minutes=10)
    with lms_client(live_server, acme) as lms, lms_client(live_server, other) as lms_b:
        for client in (lms, lms_b):
            assert client.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                                    "LastName": "Teacher"}).status_code == 200
        assert lms.post("/session", json=session_body("s-1", start=start, minutes=60,
                                                      InstructorEmails="tess@example.com")).status_code == 200
        assert lms_b.post("/session", json=session_body("b-1", start=start + timedelta(minutes=30), minutes=60,
                                                        InstructorEmails="tess@example.com")).status_code == 200
        join = lms.get(f"/session/s-1/user/{b64('jane@example.com')}/url").json()["data"]["joinUrl"]
        assert httpx2.get(join.replace("http://testserver", live_server)).status_code == 302  # Jane launches

    admin = browser.new_context(accept_downloads=True)
    page = admin.new_page()
    sign_in(page, live_server, "ada@example.com")
    page.wait_for_url(f"{live_server}/console/connections")
    assert page.locator("tr[data-connection=acme]").is_visible()
    shot(page, "connections")

    page.click("tr[data-connection=acme] a")
    page.once("dialog", lambda dialog: dialog.accept())  # "Deactivate acme? …"
    page.click("button.danger")
    page.wait_for_selector("text=deactivated")
    assert "connection.deactivate" in page.content()  # the history on the page
    shot(page, "connection-deactivated")
    with lms_client(live_server, acme) as lms:
        refused = lms.get(f"/session/s-1/user/{b64('bob@example.com')}/url")
        assert refused.status_code == 403  # the LMS is refused while it is off
    page.click("button:text-is('Activate')")
    page.wait_for_selector("span.ok:has-text('active')")

    page.click("nav >> text=Sessions")
    page.wait_for_selector("tr[data-session=s-1]")
    assert page.locator("tr[data-session=b-1]").is_visible()
    shot(page, "sessions")
    page.click("tr[data-session=s-1] a")
    page.wait_for_selector("#timeline")
    timeline = page.inner_text("#timeline")
    assert "jane@example.com" in timeline and "launched as attendee" in timeline
    shot(page, "session")
    with page.expect_download() as download:
        page.click("text=Export this part (CSV)")
    assert download.value.suggested_filename.endswith(".csv")

    teacher = browser.new_context()
    mine = teacher.new_page()
    sign_in(mine, live_server, "tess@example.com")
    mine.wait_for_url(f"{live_server}/console/my-sessions")
    assert mine.locator("#conflicts").is_visible()
    assert mine.inner_text("#conflicts").count("booked twice") == 1  # the pair once
    assert mine.locator("tr[data-session=s-1]").is_visible() and mine.locator("tr[data-session=b-1]").is_visible()
    shot(mine, "my-sessions")
    feed = mine.inner_text("#feed-url").replace("http://testserver", live_server)
    calendar = Calendar.from_ical(httpx2.get(feed).content)
    assert sorted(str(event["summary"]) for event in calendar.walk("VEVENT")) == ["Safety basics", "Safety basics"]
    mine.click("nav >> text=My calendar")
    mine.wait_for_selector("#week a.class.conflict")
    shot(mine, "my-calendar")
    forbidden = mine.goto(f"{live_server}/console/sessions")
    assert forbidden is not None and forbidden.status == 403
    admin.close()
    teacher.close()
