"""In the browser: joins and leaves from JaaS's webhooks appear on the part's timeline and chart; a learner who
joined from a personal account is resolved by the admin, and attendance follows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx2

from tests.conftest import NOW, Db, session_body
from tests.processes import wait_for
from tests.providers.jitsi.test_console_review import app as app  # the server with its job workers
from tests.providers.jitsi.test_console_review import results
from tests.providers.jitsi.test_contract_with_jitsi import START, World, meeting_id
from tests.providers.jitsi.test_contract_with_jitsi import jaas as jaas
from tests.web.test_console_browser import PASSWORD, shot, sign_in
from tests.web.test_console_browser import browser as browser
from viltbridge.app import console_users


def test_joins_reach_the_timeline_and_a_review_row_is_resolved(browser: Any, jaas: World, db: Db) -> None:
    lms, state = jaas.lms, jaas.sim.state
    lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess", "LastName": "Teacher"})
    assert lms.post("/session", json=session_body("w-1", start=START, minutes=60,
                                                  InstructorEmails="tess@example.com")).status_code == 200
    room = meeting_id(db)
    jaas.at(START - timedelta(minutes=5))
    for email in ("Jane@Example.com", "bob@example.com"):
        jaas.launch(email)
    bob = jaas.launch("bob@example.com")
    assert httpx2.get(bob).status_code == 200  # Bob comes in through his personal link
    state.join(room, "Jane D.", email="jane.personal@gmail.com")  # Jane from her own account
    jaas.at(START + timedelta(minutes=60))
    state.destroy_room(room)
    jaas.at(START + timedelta(minutes=80))
    assert lms.get("/session/w-1/attendees").json()["data"]["attendees"] == [{"email": "bob@example.com"}]
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["roster-manage"], password=PASSWORD)

    page = browser.new_context().new_page()
    sign_in(page, jaas.live_server, "ada@example.com")
    page.wait_for_url(f"{jaas.live_server}/console/sessions")
    page.click("tr[data-session=w-1] a")
    page.wait_for_selector("#timeline")
    timeline = page.inner_text("#timeline")
    assert "joined (webhook)" in timeline and "left (webhook)" in timeline and "jane.personal@gmail.com" in timeline
    assert page.locator("svg.attendance-chart g.learner[data-email='bob@example.com'] rect.segment").count() >= 1
    shot(page, "session-with-joins")
    row = page.locator("#reviews tr[data-review='jane.personal@gmail.com']")
    row.locator("select[name=lms_email]").select_option("Jane@Example.com")
    row.locator("button:text-is('This is them')").click()
    page.wait_for_url(f"{jaas.live_server}/console/sessions/acme-jitsi/w-1?done=resolved")
    assert "Saved who that participant is" in page.inner_text("#done")
    wait_for(lambda: results(db).get("Jane@Example.com") is True, seconds=60,
             what="the server's job workers to compute attendance again")
    page.reload()
    assert "alias" in page.inner_text("#attendance tr[data-email='Jane@Example.com']")
    shot(page, "session-resolved")
    assert lms.get("/session/w-1/attendees").json()["data"]["attendees"] == [{"email": "Jane@Example.com"},
                                                                           {"email": "bob@example.com"}]
