"""The sessions list and a part's page in Debian's Chromium at 1366 px (issue 17): a multi-part session grouped as
one class, each part's dates on one line, a 360-character title cut to one line with the whole title on hover, the
connection chosen from a list, the parts linked to each other, launch clicks drawn on the chart, the override form
refusing an empty reason in the browser and saying so when saved. Screenshots at 1366 px and 390 px go to
`VILTBRIDGE_ARTIFACTS` (default build/screenshots)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx2

from tests.conftest import NOW, Db, session_body
from tests.web.test_console_browser import PASSWORD, b64, browser, lms_client, shot, sign_in
from viltbridge.app import console_users

__all__ = ["browser"]  # the fixture, shared with the other browser tests

LONG_TITLE = ("Forklift operation and warehouse safety: " * 9)[:360]


def same_line(page: Any, selector: str) -> bool:
    """Every <time> in the cell starts on the same line."""
    tops = page.eval_on_selector(selector, "cell => [...cell.querySelectorAll('time')].map("
                                           "t => Math.round(t.getBoundingClientRect().top))")
    return len(tops) == 2 and tops[0] == tops[1]


def test_the_sessions_list_and_a_part_page_at_1366_px(browser: Any, live_server: str, db: Db) -> None:
    acme = db.create_connection("acme", "link")
    db.create_connection("zeta", "link")
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["roster-manage"], password=PASSWORD,
                             display_name="Ada Admin", time_zone="Europe/Berlin")
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password=PASSWORD,
                             display_name="Tess Teacher", time_zone="America/Chicago")
    with lms_client(live_server, acme) as lms:
        assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        for number in (1, 2, 3):
            assert lms.post("/session", json=session_body(
                f"p-{number}", start=NOW + timedelta(minutes=5, days=number - 1), LoId="course-1",
                Title=LONG_TITLE, InstructorEmails="tess@example.com")).status_code == 200
        assert lms.post("/session", json=session_body("solo", start=NOW + timedelta(hours=4),
                                                      Title="Fire drill")).status_code == 200
        join = lms.get(f"/session/p-1/user/{b64('jane@example.com')}/url").json()["data"]["joinUrl"]
        assert httpx2.get(join.replace("http://testserver", live_server)).status_code == 302

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("console", lambda message: script_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    sign_in(page, live_server, "ada@example.com")
    page.wait_for_url("**/console/sessions")
    page.goto(f"{live_server}/console/sessions")
    group = page.locator("tbody[data-lo-id=course-1]")
    assert [group.locator(f"tr[data-session=p-{n}] td.part").inner_text() for n in (1, 2, 3)] == [
        "part 1 of 3", "part 2 of 3", "part 3 of 3"]
    for row in ("p-1", "p-2", "p-3", "solo"):
        assert same_line(page, f"tr[data-session={row}] td.when"), row
    title = page.locator("tr[data-session=p-1] span.title")
    assert title.get_attribute("title") == LONG_TITLE
    assert title.evaluate("span => span.scrollWidth > span.clientWidth")  # cut with an ellipsis
    assert title.evaluate("span => span.getBoundingClientRect().height < 2 * parseFloat(getComputedStyle(span)"
                          ".lineHeight || '20')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # no sideways scrolling
    started = page.locator("tr[data-session=p-1] td.when time").first
    assert started.get_attribute("title") == (NOW + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M UTC")
    assert started.inner_text().endswith((NOW + timedelta(minutes=5, hours=1)).strftime("%H:%M"))  # Berlin
    shot(page, "sessions-1366")
    page.select_option("select[name=connection]", "zeta")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**connection=zeta**")
    assert page.locator("tr[data-session=p-1]").count() == 0 and "No sessions match." in page.inner_text("#sessions")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/console/sessions")
    shot(page, "sessions-390")
    page.set_viewport_size({"width": 1366, "height": 900})

    page.click("tr[data-session=p-1] a")
    page.wait_for_selector("#parts")
    assert "part 1 of 3" in page.inner_text("h1")
    page.click("#parts a:has-text('part 2 of 3')")
    page.wait_for_url("**/console/sessions/acme/p-2")
    assert "part 2 of 3" in page.inner_text("h1") and page.locator("#parts [aria-current=page]").count() == 1
    page.click("#parts a:has-text('part 1 of 3')")
    page.wait_for_url("**/console/sessions/acme/p-1")
    assert page.locator("svg.attendance-chart path.launch").count() == 1
    assert page.inner_text("#evidence").startswith("Launch clicks only")

    page.select_option("#override select[name=email]", "jane@example.com")
    page.click("#override button[type=submit]")  # no reason: the browser holds the form back
    assert page.locator("#override input[name=reason]").evaluate("input => input.validity.valueMissing")
    assert page.url.endswith("/console/sessions/acme/p-1")
    page.fill("#override input[name=reason]", "joined by phone, confirmed by the instructor")
    page.click("#override button[type=submit]")
    page.wait_for_selector("#done")
    assert "Override saved" in page.inner_text("#done")
    assert "joined by phone" in page.inner_text("#overrides")
    shot(page, "session-part-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # wide tables scroll on their own
    shot(page, "session-part-390")
    context.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    mine = phone.new_page()
    mine.on("pageerror", lambda error: script_errors.append(str(error)))
    sign_in(mine, live_server, "tess@example.com")
    mine.wait_for_url("**/console/my-sessions")
    assert mine.locator("tr[data-session=p-2] .part-of").inner_text() == "part 2 of 3"
    assert mine.locator("tr[data-session=p-1] a.button:has-text('Launch as host')").is_visible()
    shot(mine, "my-sessions-390")
    mine.goto(f"{live_server}/console/my-calendar")
    days = mine.locator("#week section.day")
    assert days.nth(1).bounding_box()["y"] > days.nth(0).bounding_box()["y"]  # one day under the other
    assert "(part 1 of 3)" in mine.inner_text("#week a[data-session=p-1]")
    shot(mine, "my-calendar-390")
    assert script_errors == []
    phone.close()
