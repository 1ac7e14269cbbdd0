"""Webex failing under the connector, through the public interfaces (the LMS contract, the launch redirect, the
webhook route of the running server): an outage or a slow Webex when the LMS saves or cancels loses nothing and
the meeting work is done once by a job after recovery; a 429 storm or 5xx on a launch still lets the learner in;
an access token expiring mid-run is invisible to the LMS; webhooks that are forged, repeated or out of order are
refused or kept once each."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, b64, session_body
from tests.processes import wait_for
from viltbridge.core.clock import FixedClock
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.http import account_breaker
from viltbridge.providers.webex import webhooks
from viltbridge.providers.webex.simulator import WebexSimulator

START = NOW + timedelta(days=1)
SOON = NOW + timedelta(minutes=5)  # a class that is open for joining now
TESS = "tess@example.com"


def fresh_world(sim: WebexSimulator, **config: Any) -> None:
    """The simulator on the app's time (NOW), with Tess as a licensed Webex host."""
    sim.reset(start=NOW, **config)
    sim.state.seed_person(TESS, first_name="Tess", last_name="Teacher")


@pytest.fixture
def webex_lms(client: TestClient, db: Db, sim: WebexSimulator) -> Lms:
    """The LMS with a `webex` connection pointed at the simulator, and Tess added as an instructor."""
    fresh_world(sim)
    created = db.create_connection("acme-webex", "webex", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    return lms


def session_row(db: Db) -> dict[str, Any]:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT meeting_id, meeting_pending, meeting_error, title FROM sessions").one()
    return dict(row._mapping)


def sync_jobs(db: Db) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.exec_driver_sql(
            "SELECT state, attempts FROM jobs WHERE kind = 'meeting.sync' ORDER BY id")]


def job_runner(lms: Lms) -> Callable[[], dict[str, int]]:
    app: Any = lms.client.app
    runner, portal = JobRunner(app.state.ctx, "test-worker"), lms.client.portal
    assert portal is not None  # the TestClient is running (its lifespan started)
    return lambda: portal.call(runner.run_due)


def live_meetings(sim: WebexSimulator) -> list[Any]:
    return [series for series in sim.state.meetings.values() if not series.deleted]


def webex_recovers(sim: WebexSimulator) -> None:
    sim.state.clear_faults()
    # The Webex client's breaker is the account breaker named after the app's client_id; it waits 30 s of real
    # time before trying Webex again. A test does not wait.
    account_breaker("webex", sim.config.client_id).close()


def follow(lms: Lms, session_id: str, email: str) -> str:
    """A person clicks their launch link: where the redirect sends them."""
    join = lms.launch(session_id, email)
    assert join.status_code == 200, join.text
    followed = lms.client.get(join.json()["data"]["joinUrl"].replace("http://testserver", ""))
    assert followed.status_code == 302, followed.text
    return str(followed.headers["location"])


def launches(db: Db) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, personal, provider_url, identity FROM launches ORDER BY id")
        return [dict(row._mapping) for row in rows]


# -- outages and slowness when the LMS saves or cancels ------------------------------------------------------------


def test_a_ten_minute_outage_at_save_time_loses_nothing(webex_lms: Lms, sim: WebexSimulator, db: Db,
                                                        clock: FixedClock) -> None:
    sim.state.inject_fault(503, count=100_000, path="/meetings")
    body = session_body("o-1", start=START, InstructorEmails=TESS)
    saved = webex_lms.create_session(body)
    assert saved.status_code == 200, saved.text  # the admin's save is not lost
    assert "will be created as soon as it is back" in saved.json()["message"]
    assert session_row(db)["meeting_pending"] == "create" and session_row(db)["meeting_id"] is None
    edited = webex_lms.update_session("o-1", {**body, "Title": "Renamed during the outage"})
    assert edited.status_code == 200 and "will be created" in edited.json()["message"]

    run_due = job_runner(webex_lms)
    assert run_due() == {}  # the first retry waits its backoff
    for minute in range(1, 11):  # ten minutes of outage: every due retry fails and backs off
        clock.set(NOW + timedelta(minutes=minute))
        run_due()
    [(state, attempts)] = sync_jobs(db)
    assert state == "queued" and 3 <= attempts <= 6  # retried, backing off, not given up
    assert session_row(db)["meeting_id"] is None and live_meetings(sim) == []
    assert account_breaker("webex", sim.config.client_id).current_state == "open"  # the outage opened it

    webex_recovers(sim)
    clock.set(NOW + timedelta(minutes=30))
    assert run_due().get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] and row["meeting_pending"] is None and row["meeting_error"] is None
    [meeting] = live_meetings(sim)
    assert meeting.id == row["meeting_id"]
    assert meeting.title == "Renamed during the outage"  # the latest save, created once
    assert meeting.integration_tags == ["viltbridge:1:o-1"]
    assert [state for state, _ in sync_jobs(db)] == ["done"]
    clock.set(NOW + timedelta(hours=1))
    assert run_due() == {} and len(sim.state.meetings) == 1  # nothing owed any more: no second meeting


def test_a_cancel_during_an_outage_reaches_webex_later(webex_lms: Lms, sim: WebexSimulator, db: Db,
                                                       clock: FixedClock) -> None:
    assert webex_lms.create_session(session_body("o-2", start=START, InstructorEmails=TESS)).status_code == 200
    [meeting] = live_meetings(sim)
    sim.state.inject_fault(503, count=100_000, path="/meetings")
    cancelled = webex_lms.cancel_session("o-2")
    assert cancelled.status_code == 200 and "will be cancelled" in cancelled.json()["message"]
    assert session_row(db)["meeting_pending"] == "cancel"
    assert not meeting.deleted  # Webex has not heard of it yet

    run_due = job_runner(webex_lms)
    clock.set(NOW + timedelta(minutes=5))
    run_due()  # still down: the cancel stays owed
    assert not meeting.deleted and session_row(db)["meeting_pending"] == "cancel"
    assert sync_jobs(db)[0][0] == "queued"

    webex_recovers(sim)
    clock.set(NOW + timedelta(minutes=30))
    assert run_due().get("done") == 1
    assert meeting.deleted and live_meetings(sim) == []
    row = session_row(db)
    assert row["meeting_pending"] is None and row["meeting_error"] is None
    assert webex_lms.cancel_session("o-2").status_code == 200  # the LMS's repeat is still fine


def test_a_slow_webex_at_save_time_is_handled_like_an_outage_and_its_late_create_is_not_doubled(
        webex_lms: Lms, sim: WebexSimulator, db: Db, clock: FixedClock) -> None:
    # Webex takes longer than the client's 5 s attempt timeout to create the meeting, then does create it: the
    # answer is lost, the create is not repeated blindly (it is not idempotent), and the job finds it by its tag.
    # 9 s: well past the 5 s attempt timeout, so a busy machine still tells the two apart.
    sim.state.inject_fault(delay=9.0, count=1, path="/meetings", method="POST")
    started = time.monotonic()
    saved = webex_lms.create_session(session_body("o-5", start=START, InstructorEmails=TESS))
    waited = time.monotonic() - started
    assert saved.status_code == 200, saved.text
    assert "will be created as soon as it is back" in saved.json()["message"]
    assert "did not answer in time" in saved.json()["message"]
    assert waited < 9.0  # the admin was answered before Webex was
    row = session_row(db)
    assert row["meeting_pending"] == "create" and row["meeting_id"] is None

    wait_for(lambda: bool(sim.state.meetings), seconds=60, what="the slow create to land at Webex after all")
    [late] = live_meetings(sim)

    clock.set(NOW + timedelta(minutes=5))
    assert job_runner(webex_lms)().get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] == late.id and row["meeting_pending"] is None and row["meeting_error"] is None
    assert len(sim.state.meetings) == 1  # adopted, not created a second time


# -- launches --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retry_after"), [(429, "1"), (503, None)], ids=["429-storm", "503"])
def test_a_learner_gets_in_on_the_shared_link_when_webex_cannot_make_a_personal_one(
        status: int, retry_after: str | None, webex_lms: Lms, sim: WebexSimulator, db: Db) -> None:
    assert webex_lms.create_session(session_body("l-1", start=SOON, InstructorEmails=TESS)).status_code == 200
    [meeting] = live_meetings(sim)
    sim.state.inject_fault(status, count=100_000, path="/meetings/join", retry_after=retry_after)
    started = time.monotonic()
    location = follow(webex_lms, "l-1", "Jane@Example.com")
    assert time.monotonic() - started < 7  # the launch budget (3 s) and slack for a busy machine, not a save's 8 s
    assert location == sim.state.web_link(meeting)  # the shared meeting link: the learner still gets in
    assert sim.state.faults[0].remaining < 100_000  # Webex was asked (and failed), not skipped
    [fallback] = launches(db)
    assert fallback["personal"] in (False, 0) and "shared_link" in str(fallback["identity"])

    webex_recovers(sim)  # the next click is personal again
    again = follow(webex_lms, "l-1", "Jane@Example.com")
    assert "/webex/join/" in again
    assert sim.state.links[again.rsplit("/", 1)[1]]["email"] == "Jane@Example.com"
    assert [launch["personal"] in (True, 1) for launch in launches(db)] == [False, True]


# -- tokens ----------------------------------------------------------------------------------------------------


def test_an_access_token_expiring_mid_run_is_invisible_to_the_lms(client: TestClient, db: Db, sim: WebexSimulator,
                                                                  clock: FixedClock) -> None:
    fresh_world(sim, record_exchanges=True)
    created = db.create_connection("acme-webex", "webex", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    body = session_body("t-1", start=SOON, InstructorEmails=TESS)
    answers = [lms.create_session(body)]
    sim.state.expire_tokens()  # as after 14 days: every token Webex issued stops working
    answers.append(lms.update_session("t-1", {**body, "Title": "Renamed after the expiry"}))
    sim.state.expire_tokens()
    location = follow(lms, "t-1", "jane@example.com")
    sim.state.expire_tokens()
    answers.append(lms.cancel_session("t-1"))

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json().get("message") is None  # nothing owed, nothing for the admin to read
    assert "/webex/join/" in location  # a personal link, not the shared fallback
    series = next(iter(sim.state.meetings.values()))
    assert series.title == "Renamed after the expiry" and series.deleted
    statuses = [exchange["status"] for exchange in sim.state.exchanges]
    assert statuses.count(401) == 3  # each expiry was met once, then a renewed token carried on
    assert all(status < 400 for status in statuses if status != 401)
    assert session_row(db)["meeting_pending"] is None


# -- webhooks through the running server ---------------------------------------------------------------------


@pytest.fixture
def live_lms(live_server: str) -> Iterator[Callable[[Db, WebexSimulator, str], httpx2.Client]]:
    opened: list[httpx2.Client] = []

    def connect(db: Db, sim: WebexSimulator, webhook_secret: str) -> httpx2.Client:
        fresh_world(sim, webhook_url=f"{live_server}/webhooks/acme-webex")
        created = db.create_connection("acme-webex", "webex", **sim.settings(webhook_secret=webhook_secret))
        lms = httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=20)
        opened.append(lms)
        assert lms.post("/instructor", json={"Email": TESS, "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        return lms

    yield connect
    for lms in opened:
        lms.close()


def stored_events(db: Db) -> list[tuple[str, str]]:
    with db.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.exec_driver_sql("SELECT event, dedupe_key FROM provider_events")]


def meeting_of(db: Db) -> str:
    with db.engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one())


def a_class_with_jane_and_bob(lms: httpx2.Client, live_server: str, sim: WebexSimulator, db: Db) -> str:
    """A class starting now with Jane and Bob launched; the meeting's series id."""
    assert lms.post("/session", json=session_body("w-1", start=SOON, minutes=60,
                                                  InstructorEmails=TESS)).status_code == 200
    for learner in ("jane@example.com", "bob@example.com"):
        join_url = lms.get(f"/session/w-1/user/{b64(learner)}/url").json()["data"]["joinUrl"]
        assert httpx2.get(join_url.replace("http://testserver", live_server)).status_code == 302
    return meeting_of(db)


def test_deliveries_not_signed_with_the_connections_secret_are_refused_and_nothing_is_kept(
        live_lms: Callable[..., httpx2.Client], live_server: str, sim: WebexSimulator, db: Db) -> None:
    lms = live_lms(db, sim, "not-the-secret-the-webhooks-were-made-with")
    meeting_id = a_class_with_jane_and_bob(lms, live_server, sim, db)
    sim.state.join(meeting_id, "Jane", email="jane@example.com")  # Webex signs with its own secret
    sim.state.end_meeting(meeting_id)
    assert [d["status"] for d in sim.state.deliveries] == ["403"] * 3

    raw = b'{"resource": "meetingParticipants", "event": "joined", "data": {"meetingId": "x", "email": "e"}}'
    url = f"{live_server}/webhooks/acme-webex"
    for headers in ({}, {"X-Spark-Signature": "0" * 40},
                    {"X-Spark-Signature": webhooks.sign(raw, sim.config.webhook_secret)}):  # the wrong secret here
        forged = httpx2.post(url, content=raw, headers=headers)
        assert forged.status_code == 403, forged.text
    unknown = httpx2.post(f"{live_server}/webhooks/nobody", content=raw)
    assert (unknown.status_code, unknown.json()) == (forged.status_code, forged.json())  # nothing told apart
    assert stored_events(db) == []


def test_a_tampered_delivery_is_refused_even_with_a_real_signature(
        live_lms: Callable[..., httpx2.Client], live_server: str, sim: WebexSimulator, db: Db) -> None:
    lms = live_lms(db, sim, sim.config.webhook_secret)
    meeting_id = a_class_with_jane_and_bob(lms, live_server, sim, db)
    sim.state.join(meeting_id, "Jane", email="jane@example.com")
    assert [d["status"] for d in sim.state.deliveries] == ["200", "200"]  # started, joined: the secret matches
    kept = stored_events(db)
    assert [event for event, _ in kept] == ["meetings.started", "meetingParticipants.joined"]

    delivery = sim.state.deliveries[-1]["body"]
    raw = json.dumps(delivery).encode()
    signature = webhooks.sign(raw, sim.config.webhook_secret)
    assert httpx2.post(f"{live_server}/webhooks/acme-webex", content=raw,
                       headers={"X-Spark-Signature": signature}).status_code == 200  # as Webex sent it: kept once
    delivery["data"]["email"] = "mallory@example.com"
    tampered = json.dumps(delivery).encode()
    refused = httpx2.post(f"{live_server}/webhooks/acme-webex", content=tampered,
                          headers={"X-Spark-Signature": signature})
    assert refused.status_code == 403
    assert stored_events(db) == kept


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_repeated_and_out_of_order_deliveries_are_kept_once_each_and_count_nothing_twice(
        order: str, live_lms: Callable[..., httpx2.Client], live_server: str, sim: WebexSimulator, db: Db,
        clock: FixedClock) -> None:
    lms = live_lms(db, sim, sim.config.webhook_secret)
    meeting_id = a_class_with_jane_and_bob(lms, live_server, sim, db)
    state = sim.state
    state.hold_webhooks()
    state.advance(5 * 60)  # the scheduled start
    state.join(meeting_id, "Jane", email="jane@example.com")
    state.join(meeting_id, "Bob", email="bob@example.com")
    state.advance(10 * 60)
    state.leave(meeting_id, "bob@example.com")  # ten minutes: not enough
    state.advance(10 * 60)
    state.join(meeting_id, "Bob", email="bob@example.com")  # Bob again: his second join is another event
    state.advance(5 * 60)
    state.leave(meeting_id, "bob@example.com")  # fifteen minutes in all: still not enough
    state.advance(30 * 60)
    state.end_meeting(meeting_id)  # Jane: 55 of 60 minutes
    assert state.deliveries == []  # all held back

    sent = state.release_webhooks(order=order, duplicate=3, seed=11)
    assert len(sent) == 7 * 3 and {delivery["status"] for delivery in sent} == {"200"}
    kept = stored_events(db)
    assert len({key for _, key in kept}) == len(kept) == 7  # each distinct event once, whatever order and repeats
    assert Counter(event for event, _ in kept) == {"meetings.started": 1, "meetingParticipants.joined": 3,
                                                  "meetingParticipants.left": 2, "meetings.ended": 1}

    clock.set(SOON + timedelta(minutes=65))  # Webex lists the ended meeting only 15 minutes after: live events decide
    live = lms.get("/session/w-1/attendees")
    assert live.status_code == 200, live.text
    assert live.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "provisional"

    state.advance(16 * 60)  # now Webex's own participant list says the same: still nobody counted twice
    clock.set(SOON + timedelta(minutes=80))
    final = lms.get("/session/w-1/attendees")
    assert final.status_code == 200 and final.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"
