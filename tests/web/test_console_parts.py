"""Sessions in the console as a learning admin and an instructor read them (issue 17): parts sharing an LoId shown
as one class (the list, the part pages with links between parts and the roll-up per learner, the instructor's
pages, the calendar feed, the exports); one vocabulary for a part's life and its attendance; times on the viewer's
clock with UTC on hover; the chart with launch clicks only; the override form keeping what was typed."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from icalendar import Calendar

from tests.conftest import NOW, Db, Lms, session_body
from tests.web.test_console_access import csrf_of, make_user, sign_in
from viltbridge.app import console_users
from viltbridge.core.permissions import ConsoleRole

PASSWORD = "correct horse battery staple"


def three_parts(lms: Lms, *, first_start: Any = None, **fields: str) -> None:
    """p-1, p-2, p-3 of LoId course-1 (a day apart, from `first_start`), and a class of its own, solo."""
    start = first_start or NOW + timedelta(days=1)
    for number in (1, 2, 3):
        assert lms.create_session(session_body(f"p-{number}", start=start + timedelta(days=number - 1),
                                               LoId="course-1", **fields)).status_code == 200
    assert lms.create_session(session_body("solo", start=start + timedelta(hours=5), Title="Fire drill",
                                           **fields)).status_code == 200


def admin(db: Db, client: TestClient, zone: str = "UTC") -> None:
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", [ConsoleRole.ROSTER_MANAGE.value],
                             password=PASSWORD, time_zone=zone)
    assert sign_in(client, "ada@example.com").status_code == 303


def launch(client: TestClient, lms: Lms, part: str, email: str) -> None:
    link = lms.launch(part, email).json()["data"]["joinUrl"]
    assert client.get(link.replace("http://testserver", "")).status_code == 302


def between(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_parts_sharing_an_lo_id_are_one_class_in_the_list_and_their_pages_link_to_each_other(
        client: TestClient, db: Db, lms: Lms) -> None:
    three_parts(lms)
    admin(db, client)
    listed = client.get("/console/sessions").text
    group = between(listed, 'data-lo-id="course-1"', "</tbody>")
    assert "LoId course-1 · 3 parts" in group
    assert [re.search(rf'data-session="p-{n}".*?part (\d) of 3', group, re.S).group(1) for n in (1, 2, 3)] == \
        ["1", "2", "3"]  # type: ignore[union-attr]
    assert group.index('data-session="p-1"') < group.index('data-session="p-2"') < group.index('data-session="p-3"')
    solo = between(listed, 'data-session="solo"', "</tr>")
    assert '<td class="part">—</td>' in solo
    page = client.get("/console/sessions/acme/p-2").text
    assert '<span class="tag">part 2 of 3</span>' in page
    parts = between(page, 'id="parts"', "</nav>")
    assert 'href="/console/sessions/acme/p-1"' in parts and 'href="/console/sessions/acme/p-3"' in parts
    assert 'aria-current="page">part 2 of 3' in parts and 'href="/console/sessions/acme/p-2"' not in parts
    assert 'id="parts"' not in client.get("/console/sessions/acme/solo").text  # one part: nothing to link


def test_each_learner_is_rolled_up_over_every_part_and_the_exports_say_which_part(
        client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    three_parts(lms, first_start=NOW + timedelta(minutes=5))
    launch(client, lms, "p-1", "jane@example.com")
    launch(client, lms, "p-1", "bob@example.com")
    clock.set(NOW + timedelta(days=1))
    launch(client, lms, "p-2", "jane@example.com")
    clock.set(NOW + timedelta(days=1, hours=3))
    for part in ("p-1", "p-2"):
        assert lms.attendees(part).status_code == 200  # decided from the launches (the link provider)
    admin(db, client)
    page = client.get("/console/sessions/acme/p-1").text
    rollup = between(page, 'id="rollup"', "</table>")
    jane = between(rollup, 'data-email="jane@example.com"', "</tr>")
    # p-3 has not happened: every part is needed, so not (yet) attended, and provisional.
    assert "✗ no" in jane and "provisional" in jane
    assert "2 of 3 part(s) attended (p-1: attended; p-2: attended; p-3: not attended); rule: every part" in jane
    assert "1 of 3 part(s) attended" in between(rollup, 'data-email="bob@example.com"', "</tr>")
    assert 'id="rollup"' not in client.get("/console/sessions/acme/solo").text

    per_part = list(csv.DictReader(io.StringIO(client.get("/console/exports/attendance.csv?connection=acme").text)))
    assert {(row["session_id"], row["lo_id"], row["part_number"], row["part_count"], row["part_status"])
            for row in per_part} == {("p-1", "course-1", "1", "3", "ended"), ("p-2", "course-1", "2", "3", "ended")}
    per_session = list(csv.DictReader(io.StringIO(
        client.get("/console/exports/attendance.csv?connection=acme&by=session").text)))
    assert {row["email"]: (row["parts"], row["attended"]) for row in per_session} == {
        "jane@example.com": ("3", "no"), "bob@example.com": ("3", "no")}

    # Launch clicks are the only evidence: drawn as ticks, and said in words.
    chart = between(page, "<svg", "</svg>")
    assert chart.count('class="launch"') == 2 and 'class="segment"' not in chart
    assert "launched 1x, no join/leave times yet" in chart
    assert "Launch clicks only: the provider reported no join/leave times yet" in between(
        page, 'id="evidence"', "</figcaption>")


def test_a_part_s_life_and_attendance_use_one_vocabulary_in_badges_filters_and_the_api_docs(
        client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    for name, start in (("ended", NOW - timedelta(hours=3)), ("live", NOW - timedelta(minutes=10)),
                        ("coming", NOW + timedelta(days=2)), ("gone", NOW + timedelta(days=3))):
        assert lms.create_session(session_body(name, start=start)).status_code == 200
    assert lms.cancel_session("gone").status_code == 200
    admin(db, client)
    listed = client.get("/console/sessions").text
    for name, life, attendance in (("ended", "ended", "collecting"), ("live", "live", "collecting"),
                                   ("coming", "scheduled", "not yet"), ("gone", "cancelled", "not yet")):
        row = between(listed, f'data-session="{name}"', "</tr>")
        assert f'<span class="badge life-{life}">{life}</span>' in row
        assert f">{attendance}</span>" in row
    filters = between(listed, 'class="filters"', "</form>")
    assert re.findall(r'name="status">(.*?)</select>', filters, re.S)[0].count("<option") == 5
    assert ">not yet</option>" in filters and ">pending</option>" not in filters

    def shown(query: str) -> set[str]:
        answer = client.get(f"/console/sessions?{query}")
        assert answer.status_code == 200, answer.text
        return set(re.findall(r'<tr data-session="([^"]+)"', answer.text))

    assert shown("status=live") == {"live"}
    assert shown("status=ended") == {"ended"}
    # At the boundaries the filter (SQL) and the badge (Python) agree: a part starting now is live, one ending now
    # has ended, and attendance is collecting from the start.
    assert lms.create_session(session_body("starts-now", start=NOW)).status_code == 200
    assert lms.create_session(session_body("ends-now", start=NOW - timedelta(minutes=60))).status_code == 200
    listed = client.get("/console/sessions").text
    assert ">live</span>" in between(listed, 'data-session="starts-now"', "</tr>")
    assert ">ended</span>" in between(listed, 'data-session="ends-now"', "</tr>")
    assert shown("status=live") == {"live", "starts-now"} and shown("status=ended") == {"ended", "ends-now"}
    assert "starts-now" in shown("attendance=collecting") and "starts-now" not in shown("attendance=not+yet")
    assert shown("status=scheduled") == {"coming"}
    assert shown("status=cancelled") == {"gone"}
    assert shown("attendance=not+yet") == {"coming", "gone"}
    assert shown("attendance=pending") == {"coming", "gone"}  # an older link's word still works
    assert shown("attendance=collecting") == {"ended", "live", "starts-now", "ends-now"}
    refused = client.get("/console/sessions?status=active")
    assert refused.status_code == 400
    assert ("Status &#39;active&#39; is not one of scheduled, live, ended, cancelled: pick one of them, or any."
            in refused.text)
    described = lms.call("GET", "/openapi.json").json()  # the published API docs
    words = next(operation["get"]["description"] for path, operation in described["paths"].items()
                 if path.endswith("/attendees"))
    assert all(f"*{word}*" in words for word in ("scheduled", "live", "ended", "cancelled", "not yet",
                                                 "collecting", "provisional", "final"))


def test_times_are_on_the_viewer_s_clock_with_utc_on_hover_and_the_guessed_zone_says_so(
        client: TestClient, db: Db, lms: Lms) -> None:
    start = NOW + timedelta(days=1)  # 2026-03-03 14:00 UTC = 15:00 in Berlin
    assert lms.create_session(session_body("s-1", start=start)).status_code == 200
    admin(db, client, zone="Europe/Berlin")
    shown = ('<time datetime="2026-03-03T14:00:00Z" title="2026-03-03 14:00 UTC">Tue 2026-03-03 15:00</time>\u2013'
             '<time datetime="2026-03-03T15:00:00Z" title="2026-03-03 15:00 UTC">16:00</time>')
    listed = client.get("/console/sessions").text
    assert shown in listed and "Times in Europe/Berlin" in listed
    page = client.get("/console/sessions/acme/s-1").text
    assert shown in page
    assert "the LMS sent UTC-05:00, zone guessed as America/New_York" in page
    assert "(America/New_York)" not in page  # never as if the LMS had said so


def test_the_calendar_feed_carries_description_launch_link_console_url_part_and_edit_count(
        client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    three_parts(lms, InstructorEmails="tess@example.com")
    make_user(db, "tess@example.com", ConsoleRole.INSTRUCTOR)
    sign_in(client, "tess@example.com")
    mine = client.get("/console/my-sessions").text
    assert "part 2 of 3" in between(mine, 'data-session="p-2"', "</tr>")
    assert "part" not in between(mine, 'data-session="solo"', "</tr>").split("</a>")[0]
    own_page = client.get("/console/my-sessions/acme/p-2").text
    assert '<span class="tag">part 2 of 3</span>' in own_page
    assert 'href="/console/my-sessions/acme/p-1"' in between(own_page, 'id="parts"', "</nav>")
    week = client.get("/console/my-calendar?week=2026-W10").text
    assert ">Safety basics</span> (part 1 of 3)" in between(week, 'data-session="p-1"', "</a>")
    feed = re.search(r'<code id="feed-url">http://testserver([^<]+)</code>', mine)
    assert feed

    def event(part: str) -> Any:
        answer = client.get(feed.group(1))  # type: ignore[union-attr]
        assert answer.status_code == 200
        return next(found for found in Calendar.from_ical(answer.content).walk("VEVENT")
                    if str(found["uid"]) == f"acme.{part}@viltbridge")

    second = event("p-2")
    assert str(second["summary"]) == "Safety basics (part 2 of 3)"
    assert str(event("solo")["summary"]) == "Fire drill"
    page = "http://testserver/console/my-sessions/acme/p-2"
    assert str(second["url"]) == page
    description = str(second["description"])
    assert description.startswith("Part of onboarding")  # the session's own description
    assert f"Launch as host: {page}/launch" in description and f"In the console: {page}" in description
    host = client.get(f"{page}/launch".replace("http://testserver", ""))
    assert host.status_code == 303 and "/l/" in host.headers["location"]  # through the signed launch redirect
    assert int(second["sequence"]) == 0
    body = session_body("p-2", start=NOW + timedelta(days=2), LoId="course-1", InstructorEmails="tess@example.com")
    assert lms.update_session("p-2", {**body, "Title": "Forklift safety"}).status_code == 200
    assert lms.update_session("p-2", {**body, "Title": "Forklift safety, again"}).status_code == 200
    assert int(event("p-2")["sequence"]) == 2
    assert lms.cancel_session("p-2").status_code == 200
    cancelled = event("p-2")
    assert int(cancelled["sequence"]) == 3 and str(cancelled["status"]) == "CANCELLED"
    assert "Launch as host" not in str(cancelled["description"])
    assert int(event("p-1")["sequence"]) == 0  # its sibling was not edited


def test_an_override_without_a_reason_keeps_what_was_typed_and_says_what_is_missing(
        client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    assert lms.create_session(session_body("s-1", start=NOW + timedelta(minutes=5))).status_code == 200
    launch(client, lms, "s-1", "jane@example.com")
    launch(client, lms, "s-1", "bob@example.com")
    admin(db, client)
    page = client.get("/console/sessions/acme/s-1").text
    form = between(page, 'id="override"', "</form>")
    assert re.search(r'<select name="email" required', form) and re.search(r'<input name="reason"[^>]* required', form)
    before = db.snapshot()
    refused = client.post("/console/sessions/acme/s-1/overrides", data={
        "csrf_token": csrf_of(page), "email": "jane@example.com", "attended": "no", "reason": " x "})
    assert refused.status_code == 400
    form = between(refused.text, 'id="override"', "</form>")
    assert '<option selected>jane@example.com</option>' in form and '<option value="no" selected>' in form
    assert 'value=" x "' in form and 'aria-invalid="true" aria-describedby="reason-error"' in form
    assert re.search(r'id="reason-error">Say why \(e.g. &#39;joined by phone', form)
    assert refused.text.count("<h1") == 1
    assert db.snapshot() == before  # nothing changed
    saved = client.post("/console/sessions/acme/s-1/overrides", data={
        "csrf_token": csrf_of(page), "email": "jane@example.com", "attended": "no", "reason": "left at once"})
    assert saved.status_code == 303 and saved.headers["location"] == "/console/sessions/acme/s-1?done=override"
    after = client.get(saved.headers["location"]).text
    assert "Override saved: attendance is being computed again with it." in after
    assert "left at once" in between(after, 'id="overrides"', "</table>")
    assert "&lt;script" not in client.get("/console/sessions/acme/s-1?done=%3Cscript%3E").text  # fixed words only


def test_the_list_offers_the_connections_to_choose_from_and_cuts_long_titles(
        client: TestClient, db: Db, lms: Lms) -> None:
    db.create_connection("zeta", "link")
    long_title = "Forklift " * 40
    assert lms.create_session(session_body("s-1", Title=long_title.strip())).status_code == 200
    admin(db, client)
    listed = client.get("/console/sessions?connection=acme").text
    select = between(listed, '<select name="connection">', "</select>")
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "acme", "zeta"]
    assert '<option value="acme" selected>' in select
    assert f'<span class="title" title="{long_title.strip()}">' in listed
    assert 'data-session="s-1"' not in client.get("/console/sessions?connection=zeta").text
