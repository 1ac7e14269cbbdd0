"""The account page in Debian's Chromium: an instructor copies their calendar feed link with the button, changes
their time zone and then sees their classes in it, and signs out everywhere; no console error on the way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import NOW, Db, session_body
from tests.web.test_console_browser import PASSWORD, browser, lms_client, shot, sign_in
from viltbridge.app import console_users

__all__ = ["browser"]  # the Chromium fixture, shared with the other browser tests


def test_an_instructor_copies_the_feed_link_changes_zone_and_signs_out_everywhere(
        browser: Any, live_server: str, db: Db) -> None:
    acme = db.create_connection("acme", "link")
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password=PASSWORD,
                             display_name="Tess Teacher")
    starts = NOW + timedelta(hours=2)
    with lms_client(live_server, acme) as lms:
        assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        assert lms.post("/session", json=session_body("s-1", start=starts, minutes=60,
                                                      InstructorEmails="tess@example.com")).status_code == 200
    context = browser.new_context(viewport={"width": 1366, "height": 768},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, live_server, "tess@example.com")
    page.goto(f"{live_server}/console/my-sessions")
    assert "Times in UTC" in page.inner_text("main")
    assert starts.strftime("%Y-%m-%d %H:%M") in page.inner_text("#upcoming")
    page.click("main >> text=your account")
    assert page.url.endswith("/console/account") and page.locator("h1").count() == 1

    feed = page.get_attribute("#feed-url", "href")
    # the link is made from the public URL the app was given (the test app says http://testserver)
    assert feed and feed.startswith("http://testserver/console/ics/") and page.inner_text("#feed-url") == feed
    page.click("#copy-feed")
    page.wait_for_function("document.getElementById('copy-feed-status').textContent === 'Copied.'")
    assert page.evaluate("navigator.clipboard.readText()") == feed

    assert page.get_attribute("#time_zone", "required") is not None
    page.select_option("#time_zone", "Asia/Tokyo")
    page.click("#time-zone-form button[type=submit]")
    page.wait_for_selector("#account-saved")
    assert "times are now shown in Asia/Tokyo" in page.inner_text("#account-saved")
    shot(page, "account-saved-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "account-saved-390")
    assert page.evaluate("document.querySelector('main').scrollWidth <= 390")  # the long feed link wraps on a phone
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server}/console/my-sessions")
    assert "Times in Asia/Tokyo" in page.inner_text("main")
    assert (starts + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M") in page.inner_text("#upcoming")

    page.goto(f"{live_server}/console/account")
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.focus("#sign-out-everywhere-form button")  # reachable by keyboard: Enter submits it, once confirmed
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/login")
    page.goto(f"{live_server}/console/my-sessions")
    assert "/console/login" in page.url  # this browser too must sign in again
    assert dialogs == ["Sign out every browser signed in as you, this one included?"]
    assert problems == []
    context.close()
