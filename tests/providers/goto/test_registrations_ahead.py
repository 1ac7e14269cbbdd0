"""Learners registered for a GoTo training ahead of their click (`app.registrations`), through the Cornerstone
contract over HTTP against the GoTo Training simulator, with the job run as a worker runs it: the learners who
launched part 1 of a multi-part session get part 2's registrant link before they click, and their click is
answered from the store without a GoTo call; nobody is registered twice (a rerun, a run whose answers were lost);
an outage is retried; the client-side limit keeps GoTo from answering 429; an edited part keeps its links and a
cancelled one lets nobody in; a learner nobody knew is registered at their click as before."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import sqlalchemy as sa

from tests.conftest import NOW, Db, Lms, b64, session_body
from tests.providers.goto.conftest import TESS, get_token
from tests.providers.goto.test_faults import follow, goto_recovers, job_runner
from viltbridge.app.registrations import LOOK_EVERY
from viltbridge.core.clock import FixedClock
from viltbridge.providers.goto.simulator import GotoSimulator

PART_1 = NOW + timedelta(minutes=5)
PART_2 = NOW + timedelta(days=1)
LEARNERS = ["Ann@Example.com", "bob@example.com", "cat@example.com"]



def two_parts(lms: Lms, **part_2: Any) -> dict[str, Any]:
    """Parts 1 and 2 of one multi-part session (one LoId); returns part 2's body."""
    first = session_body("p-1", start=PART_1, InstructorEmails=TESS, LoId="lo-1")
    second = session_body("p-2", start=PART_2, InstructorEmails=TESS, LoId="lo-1", **part_2)
    assert lms.create_session(first).status_code == 200
    assert lms.create_session(second).status_code == 200
    return second


def training_of(db: Db, sim: GotoSimulator, external_id: str) -> Any:
    with db.engine.connect() as conn:
        key = conn.execute(sa.text("SELECT meeting_id FROM sessions WHERE external_id = :id"),
                           {"id": external_id}).scalar()
    return sim.state.trainings[str(key)]


def registrant_links(sim: GotoSimulator, training: Any) -> dict[str, str]:
    return {r.email.lower(): sim.state.join_url(training, r) for r in training.registrants.values()}


def registering_calls(sim: GotoSimulator) -> int:
    return sum(1 for e in sim.state.exchanges if e["method"] == "POST" and e["route"].endswith("/registrants"))


def jobs_of_part(db: Db, external_id: str) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT j.state, j.attempts, j.last_error FROM jobs j JOIN sessions s ON s.id = j.session_id "
            "WHERE j.kind = 'learners.register' AND s.external_id = :id"), {"id": external_id})
        return [dict(row._mapping) for row in rows]


def part_1_launched(lms: Lms, clock: FixedClock, learners: list[str]) -> Callable[[], dict[str, int]]:
    """Part 1's launch window: the instructor and `learners` click; returns the worker's "run what is due"."""
    run_due = job_runner(lms)
    run_due()  # the jobs the saves asked for: nobody to register yet
    clock.set(PART_1 - timedelta(minutes=5))
    follow(lms, "p-1", TESS)
    for email in learners:
        follow(lms, "p-1", email)
    return run_due


def test_learners_of_part_1_get_part_2s_link_ahead_and_their_click_calls_no_goto(
        goto_lms: Lms, goto_simulator: GotoSimulator, db: Db, clock: FixedClock) -> None:
    sim = goto_simulator
    two_parts(goto_lms)
    run_due = part_1_launched(goto_lms, clock, LEARNERS)
    second = training_of(db, sim, "p-2")
    calls = len(sim.state.exchanges)
    run_due()
    assert second.registrants == {}  # the job looks for part 1's learners every LOOK_EVERY, not at each click
    assert len(sim.state.exchanges) == calls
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    ahead = registrant_links(sim, second)
    assert set(ahead) == {email.lower() for email in LEARNERS}  # the instructor is no registrant
    assert {r.email for r in second.registrants.values()} == set(LEARNERS)  # as the LMS spelled them
    assert jobs_of_part(db, "p-2")[0]["state"] == "queued"  # looking again while part 1's window is open
    clock.set(PART_1 + timedelta(hours=2, minutes=5))  # part 1 ended an hour ago, and with it its launches
    run_due()
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    assert jobs_of_part(db, "p-2")[0]["state"] == "done"

    clock.set(PART_2 - timedelta(minutes=5))
    calls = len(sim.state.exchanges)
    for email in LEARNERS:
        assert follow(goto_lms, "p-2", email) == ahead[email.lower()]
    assert len(sim.state.exchanges) == calls  # answered from the store
    assert follow(goto_lms, "p-2", "bob@example.com") == ahead["bob@example.com"]  # and again on a second click

    # Someone nobody knew is registered at their click, as before.
    dan = follow(goto_lms, "p-2", "dan@example.com")
    assert dan == registrant_links(sim, second)["dan@example.com"] and len(second.registrants) == 4
    with db.engine.connect() as conn:
        stored = " ".join(conn.exec_driver_sql("SELECT provider_url FROM registrations").scalars())
    assert "/join/training/" not in stored  # the links are credentials: encrypted
    assert sim.state.rate_limited == 0


def test_nobody_is_registered_twice(goto_lms: Lms, goto_simulator: GotoSimulator, db: Db,
                                    clock: FixedClock) -> None:
    sim = goto_simulator
    second_body = two_parts(goto_lms)
    run_due = part_1_launched(goto_lms, clock, LEARNERS)
    second = training_of(db, sim, "p-2")
    # An earlier run registered Bob at GoTo, but its answers were lost before anything was stored.
    with httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"}) as api:
        lost = api.post(f"/organizers/{sim.config.organizer_key}/trainings/{second.key}/registrants",
                        json={"email": "bob@example.com", "givenName": "bob", "surname": "-"})
    assert lost.status_code == 201
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    assert len(second.registrants) == 3  # GoTo refused Bob's second registration; his first is kept
    ahead = registrant_links(sim, second)
    assert ahead["bob@example.com"] == lost.json()["joinUrl"]

    # Asked again (the part saved again, a learner of part 1 clicking again): nobody left to register.
    calls = registering_calls(sim)
    assert goto_lms.update_session("p-2", second_body).status_code == 200
    follow(goto_lms, "p-1", "cat@example.com")
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    assert registering_calls(sim) == calls and len(second.registrants) == 3
    clock.set(PART_2 - timedelta(minutes=5))
    assert follow(goto_lms, "p-2", "bob@example.com") == lost.json()["joinUrl"]


def test_an_outage_is_retried_until_goto_is_back(goto_lms: Lms, goto_simulator: GotoSimulator, db: Db,
                                                 clock: FixedClock) -> None:
    sim = goto_simulator
    two_parts(goto_lms)
    run_due = part_1_launched(goto_lms, clock, LEARNERS)
    second = training_of(db, sim, "p-2")
    sim.state.inject_fault(503, count=100_000, path="/registrants")
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    [job] = jobs_of_part(db, "p-2")
    assert job["state"] == "queued" and job["attempts"] == 1 and job["last_error"]
    assert second.registrants == {}

    goto_recovers(sim)
    clock.set(clock.now() + timedelta(hours=1))  # past the retry's backoff
    run_due()
    assert set(registrant_links(sim, second)) == {email.lower() for email in LEARNERS}
    assert jobs_of_part(db, "p-2")[0]["state"] == "queued"  # looking again while part 1's window is open


def click(lms: Lms, session_id: str, email: str) -> int:
    """A click on the launch link; its status (302: sent on, 200: the holding page while GoTo catches up)."""
    join = lms.call("GET", f"/session/{session_id}/user/{b64(email)}/url")
    assert join.status_code == 200, join.text
    return lms.client.get(join.json()["data"]["joinUrl"].replace("http://testserver", "")).status_code


def test_registering_ahead_while_a_class_clicks_never_meets_gotos_limit(
        goto_lms: Lms, goto_simulator: GotoSimulator, db: Db, clock: FixedClock) -> None:
    sim = goto_simulator
    two_parts(goto_lms)
    known = [f"learner{n}@example.com" for n in range(20)]
    run_due = part_1_launched(goto_lms, clock, known)
    clock.set(clock.now() + LOOK_EVERY)
    # The job registers the 20 for part 2 while 30 latecomers click part 1 (registered at their click): both
    # draw on GoTo's 10 calls a second, the job on its background share.
    worker = threading.Thread(target=run_due)
    worker.start()
    statuses = [click(goto_lms, "p-1", f"late{n}@example.com") for n in range(30)]
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert set(statuses) <= {200, 302}
    assert len(training_of(db, sim, "p-2").registrants) == 20
    assert sim.state.rate_limited == 0  # GoTo never had to refuse a call


def test_an_edited_part_keeps_its_links_and_a_cancelled_one_lets_nobody_in(
        goto_lms: Lms, goto_simulator: GotoSimulator, db: Db, clock: FixedClock) -> None:
    sim = goto_simulator
    second_body = two_parts(goto_lms)
    run_due = part_1_launched(goto_lms, clock, LEARNERS)
    clock.set(clock.now() + LOOK_EVERY)
    run_due()
    second = training_of(db, sim, "p-2")
    ahead = registrant_links(sim, second)

    later = PART_2 + timedelta(hours=2)
    edited = {**second_body, "Title": "Forklift safety, part 2",
              "DateBegin": later.strftime("%Y-%m-%dT%H:%M:%S"),
              "DateEnd": (later + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")}
    assert goto_lms.update_session("p-2", edited).status_code == 200
    assert training_of(db, sim, "p-2") is second and second.name == "Forklift safety, part 2"  # in place
    clock.set(later - timedelta(minutes=5))
    assert follow(goto_lms, "p-2", "Ann@Example.com") == ahead["ann@example.com"]

    assert goto_lms.call("DELETE", "/session/p-2").status_code == 200
    assert second.deleted
    refused = goto_lms.call("GET", f"/session/p-2/user/{b64('bob@example.com')}/url")
    assert refused.status_code == 400 and "cancelled" in refused.json()["error"]["message"]
    # A learner of part 1 clicking again asks for no work on the cancelled part.
    clock.set(PART_1)
    follow(goto_lms, "p-1", "eve@example.com")
    clock.set(clock.now() + LOOK_EVERY)
    calls = registering_calls(sim)
    run_due()
    assert registering_calls(sim) == calls
