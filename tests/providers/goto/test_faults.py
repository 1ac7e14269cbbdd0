"""GoTo Training failing under the connector: an outage is a transient ProviderFailed (the adapter raises it, the
LMS's save is kept and a job does the work once after recovery), a create whose answer was lost is adopted rather
than doubled, a 429 storm or an outage on a launch still lets the learner in (GoTo's registration page), the token
endpoint failing is transient too, and access tokens expiring mid-run are invisible to the LMS."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Db, Lms, b64, session_body
from tests.processes import wait_for
from tests.providers.conftest import meeting_spec
from tests.providers.goto.conftest import COHOST, HOST, TESS, fresh
from viltbridge.core.clock import FixedClock
from viltbridge.core.errors import ProviderFailed
from viltbridge.core.models import Role
from viltbridge.core.provider import Person
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.goto.adapter import GotoProvider
from viltbridge.providers.goto.simulator import GotoSimulator
from viltbridge.providers.http import ProviderApiError, ProviderUnreachable, account_breaker

START = NOW + timedelta(days=1)
SOON = NOW + timedelta(minutes=5)



def session_row(db: Db) -> dict[str, Any]:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT meeting_id, meeting_pending, meeting_error, title FROM sessions").one()
    return dict(row._mapping)


def job_runner(lms: Lms) -> Callable[[], dict[str, int]]:
    app: Any = lms.client.app
    runner, portal = JobRunner(app.state.ctx, "test-worker"), lms.client.portal
    assert portal is not None
    return lambda: portal.call(runner.run_due)


def live_trainings(sim: GotoSimulator) -> list[Any]:
    return [t for t in sim.state.trainings.values() if not t.deleted]


def goto_recovers(sim: GotoSimulator) -> None:
    sim.state.clear_faults()
    # The adapter's breaker is the account breaker; it waits 30 s of real time before trying again.
    account_breaker("goto", f"{sim.config.client_id}:{sim.config.organizer_key}").close()


def follow(lms: Lms, session_id: str, email: str) -> str:
    join = lms.call("GET", f"/session/{session_id}/user/{b64(email)}/url")
    assert join.status_code == 200, join.text
    followed = lms.client.get(join.json()["data"]["joinUrl"].replace("http://testserver", ""))
    assert followed.status_code == 302, followed.text
    return str(followed.headers["location"])


# -- the adapter on its own --------------------------------------------------------------------------------------


@pytest.mark.pure
async def test_an_outage_is_a_transient_provider_failure(sim: GotoSimulator, provider: GotoProvider) -> None:
    spec = meeting_spec(HOST, COHOST)
    meeting = await provider.create_meeting(spec())
    sim.state.inject_fault(503, count=1000, path="/G2T/rest")
    for call in (lambda: provider.create_meeting(spec(session_key="1:other")),
                 lambda: provider.update_meeting(meeting, spec()),
                 lambda: provider.cancel_meeting(meeting),
                 lambda: provider.collect_attendance(meeting, spec())):
        with pytest.raises(ProviderFailed) as caught:
            await call()
        assert caught.value.transient, caught.value
        assert "server error" in caught.value.message or "pausing calls" in caught.value.message


@pytest.mark.pure
async def test_the_token_endpoint_down_is_transient_too(goto_simulator: GotoSimulator) -> None:
    sim = fresh(goto_simulator)
    sim.state.inject_fault(503, count=1000, path="/oauth/token")
    provider = GotoProvider.from_settings(sim.settings())
    with pytest.raises(ProviderApiError) as caught:
        await provider.create_meeting(meeting_spec(HOST, COHOST)())
    assert caught.value.transient and caught.value.http_status == 503
    await provider.aclose()


@pytest.mark.pure
async def test_goto_unreachable_is_transient(goto_simulator: GotoSimulator) -> None:
    sim = fresh(goto_simulator)
    provider = GotoProvider.from_settings(sim.settings(api_base_url="http://127.0.0.1:9/G2T/rest",
                                                       token_url="http://127.0.0.1:9/oauth/token"))
    with pytest.raises(ProviderUnreachable) as caught:
        await provider.create_meeting(meeting_spec(HOST, COHOST)())
    assert caught.value.transient and "could not connect to GoTo Training" in caught.value.message
    await provider.aclose()


@pytest.mark.pure
async def test_a_429_storm_on_a_launch_still_lets_the_learner_in(sim: GotoSimulator, provider: GotoProvider) -> None:
    meeting = await provider.create_meeting(meeting_spec(HOST, COHOST)())
    sim.state.inject_fault(429, count=1000, path="/registrants")
    started = time.monotonic()
    link = await provider.launch_link(meeting, Person("jane@example.com", "Jane", "Doe"), Role.ATTENDEE)
    assert time.monotonic() - started < 7  # the launch budget (3 s), not a save's (8 s)
    assert link.url == meeting.join_url and not link.personal and link.retry_after_seconds


# -- through the LMS contract -------------------------------------------------------------------------------------


def test_a_ten_minute_outage_at_save_time_loses_nothing(goto_lms: Lms, goto_simulator: GotoSimulator, db: Db,
                                                        clock: FixedClock) -> None:
    sim = goto_simulator
    sim.state.inject_fault(503, count=100_000, path="/trainings")
    body = session_body("o-1", start=START, InstructorEmails=TESS)
    saved = goto_lms.create_session(body)
    assert saved.status_code == 200, saved.text  # the admin's save is not lost
    assert "will be created as soon as it is back" in saved.json()["message"]
    assert session_row(db)["meeting_pending"] == "create"
    assert goto_lms.update_session("o-1", {**body, "Title": "Renamed during the outage"}).status_code == 200

    run_due = job_runner(goto_lms)
    for minute in range(1, 11):
        clock.set(NOW + timedelta(minutes=minute))
        run_due()
    assert session_row(db)["meeting_id"] is None and live_trainings(sim) == []

    goto_recovers(sim)
    clock.set(NOW + timedelta(minutes=30))
    assert run_due().get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] and row["meeting_pending"] is None and row["meeting_error"] is None
    [training] = live_trainings(sim)
    assert training.key == row["meeting_id"] and training.name == "Renamed during the outage"
    clock.set(NOW + timedelta(hours=1))
    assert run_due() == {} and len(sim.state.trainings) == 1


def test_a_slow_create_is_not_doubled(goto_lms: Lms, goto_simulator: GotoSimulator, db: Db,
                                      clock: FixedClock) -> None:
    # GoTo takes longer than the 5 s attempt timeout, then creates the training: the answer is lost, the create
    # is not repeated blindly, and the job adopts the training by the session's mark in its description.
    sim = goto_simulator
    sim.state.inject_fault(delay=6.5, count=1, path="/trainings", method="POST")
    saved = goto_lms.create_session(session_body("o-5", start=START, InstructorEmails=TESS))
    assert saved.status_code == 200 and "will be created" in saved.json()["message"]
    assert session_row(db)["meeting_pending"] == "create"
    wait_for(lambda: bool(sim.state.trainings), seconds=60, what="the slow create to land at GoTo after all")
    [late] = live_trainings(sim)

    clock.set(NOW + timedelta(minutes=5))
    assert job_runner(goto_lms)().get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] == late.key and row["meeting_pending"] is None
    assert len(sim.state.trainings) == 1  # adopted, not created a second time


def test_a_cancel_during_an_outage_reaches_goto_later(goto_lms: Lms, goto_simulator: GotoSimulator, db: Db,
                                                      clock: FixedClock) -> None:
    sim = goto_simulator
    assert goto_lms.create_session(session_body("o-2", start=START, InstructorEmails=TESS)).status_code == 200
    [training] = live_trainings(sim)
    sim.state.inject_fault(503, count=100_000, path="/trainings")
    cancelled = goto_lms.cancel_session("o-2")
    assert cancelled.status_code == 200 and "will be cancelled" in cancelled.json()["message"]
    assert not training.deleted
    goto_recovers(sim)
    clock.set(NOW + timedelta(minutes=30))
    assert job_runner(goto_lms)().get("done") == 1
    assert training.deleted and session_row(db)["meeting_pending"] is None


def test_a_learner_gets_gotos_registration_page_during_an_outage(goto_lms: Lms, goto_simulator: GotoSimulator,
                                                                 db: Db) -> None:
    sim = goto_simulator
    assert goto_lms.create_session(session_body("l-1", start=SOON, InstructorEmails=TESS)).status_code == 200
    [training] = live_trainings(sim)
    sim.state.inject_fault(503, count=100_000, path="/registrants")
    join = goto_lms.launch("l-1", "Jane@Example.com").json()["data"]["joinUrl"]
    path = join.replace("http://testserver", "")
    held = goto_lms.client.get(path)  # a better link is likely soon: the launch page holds the learner
    assert held.status_code == 200 and 'http-equiv="refresh"' in held.text
    last = goto_lms.client.get(path + "?attempt=2")
    assert last.status_code == 302 and last.headers["location"] == f"{sim.base_url}/r/{training.key}"

    goto_recovers(sim)  # the next click is personal again
    again = follow(goto_lms, "l-1", "Jane@Example.com")
    assert f"/join/training/{training.key}/" in again


def test_access_tokens_expiring_mid_run_are_invisible_to_the_lms(goto_lms: Lms, goto_simulator: GotoSimulator,
                                                                 db: Db) -> None:
    sim = goto_simulator
    body = session_body("t-1", start=SOON, InstructorEmails=TESS)
    answers = [goto_lms.create_session(body)]
    sim.state.expire_tokens()  # as after 60 minutes
    answers.append(goto_lms.update_session("t-1", {**body, "Title": "Renamed after the expiry"}))
    sim.state.expire_tokens()
    location = follow(goto_lms, "t-1", "jane@example.com")
    sim.state.expire_tokens()
    answers.append(goto_lms.cancel_session("t-1"))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json().get("message") is None
    assert "/join/training/" in location
    [training] = sim.state.trainings.values()
    assert training.name == "Renamed after the expiry" and training.deleted
    statuses = [exchange["status"] for exchange in sim.state.exchanges]
    assert statuses.count(401) == 3 and all(status < 400 for status in statuses if status != 401)
