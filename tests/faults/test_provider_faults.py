"""Every provider with an API failing in every way, through the LMS contract: down (connection refused), slow (past
our timeouts), 429 with a long Retry-After, 5xx, and answers that are not what the API documents (malformed JSON,
JSON of the wrong shape) while the LMS creates, updates and cancels sessions, a learner launches, and the LMS asks
for attendance. The LMS gets only answers /openapi.json documents, in the contract's envelope; every session is
kept; once the provider is back the job ledger does the owed work; each session has exactly one meeting at the
provider; the attendance the provider recorded is all there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import Db, Lms, session_body
from tests.faults.door import Door, Fault
from tests.processes import documented_statuses
from tests.providers.conftest import zoom_settings
from viltbridge.core.clock import FixedClock
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.bbb.simulator import BbbSimulator
from viltbridge.providers.bbb.simulator import running_simulator as bbb_running
from viltbridge.providers.goto.simulator import GotoSimulator
from viltbridge.providers.goto.simulator import running_simulator as goto_running
from viltbridge.providers.teams.simulator import TeamsSimulator
from viltbridge.providers.teams.simulator import running_simulator as teams_running
from viltbridge.providers.webex.simulator import WebexSimulator
from viltbridge.providers.webex.simulator import running_simulator as webex_running
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.providers.zoom.simulator import running_simulator as zoom_running

START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the class whose attendance is asked for: 14:00-15:00
ASKED_AT = START + timedelta(minutes=90)  # when the faults happen: that class is over, the next one opens
TESS, JANE = "tess@example.com", "jane@example.com"
SERVER_ERROR = "503"  # played by the simulator itself, with the provider's own error body
LAUNCH = "/session/{SessionId}/user/{base64EncodedEmail}/url"


@dataclass
class World:
    """One provider's simulator, how to point a connection at it, and how a class happens there."""

    kind: str
    sim: Any
    settings: Callable[[Any], dict[str, str]]
    seed: Callable[[Any], None]
    live_meetings: Callable[[Any], dict[str, str]]  # meeting id -> title, for meetings not deleted
    attend: Callable[[Any, str], None]  # Jane attends the whole of START..START+60 min; the report is ready


def _zoom_attend(sim: ZoomSimulator, meeting_id: str) -> None:
    state = sim.state
    state.set_clock(START)
    state.start_meeting(meeting_id)
    state.join(meeting_id, "Jane", registrant=JANE)
    state.set_clock(START + timedelta(minutes=60))
    state.leave(meeting_id, "Jane")
    state.end_meeting(meeting_id)
    state.mark_report_processed(meeting_id)
    state.set_clock(ASKED_AT)


def _teams_attend(sim: TeamsSimulator, meeting_id: str) -> None:
    state = sim.state
    state.advance(10 * 60)  # START
    state.start_meeting(meeting_id)
    state.join(meeting_id, upn=JANE)
    state.advance(60 * 60)
    state.end_meeting(meeting_id)
    state.advance(30 * 60)


def _webex_attend(sim: WebexSimulator, meeting_id: str) -> None:
    state = sim.state
    state.set_clock(START)
    state.join(meeting_id, "Jane", email=JANE)
    state.set_clock(START + timedelta(minutes=60))
    state.end_meeting(meeting_id)
    state.set_clock(ASKED_AT)  # Webex lists an ended meeting's participants after a delay


def _goto_attend(sim: GotoSimulator, training_key: str) -> None:
    state = sim.state
    state.join(training_key, JANE, at=START)
    state.end_session(training_key, at=START + timedelta(minutes=60))
    state.set_clock(ASKED_AT)


def _teams_seed(sim: TeamsSimulator) -> None:
    sim.state.seed_user(TESS, "Tess Teacher")
    sim.state.seed_user(JANE, "Jane Doe")  # in the tenant: Graph reports her by her email


WORLDS: dict[str, Callable[[Any], World]] = {
    "zoom": lambda sim: World(
        "zoom", sim, zoom_settings, lambda s: s.state.seed_user(TESS, first_name="Tess", last_name="Teacher"),
        lambda s: {str(m["id"]): m["topic"] for m in s.state.snapshot()["meetings"] if not m["deleted"]},
        _zoom_attend),
    "teams": lambda sim: World(
        "teams", sim, lambda s: s.settings(), _teams_seed,
        lambda s: {m.id: m.subject for m in s.state.meetings.values()}, _teams_attend),
    "webex": lambda sim: World(
        "webex", sim, lambda s: s.settings(), lambda s: s.state.seed_person(TESS, "Tess", "Teacher"),
        lambda s: {m.id: m.title for m in s.state.meetings.values() if not m.deleted}, _webex_attend),
    "goto": lambda sim: World(
        "goto", sim, lambda s: s.settings(), lambda s: None,
        lambda s: {t.key: t.name for t in s.state.trainings.values() if not t.deleted}, _goto_attend),
}


@pytest.fixture(scope="module")
def simulators() -> Iterator[dict[str, Any]]:
    with zoom_running(start=START) as zoom, teams_running(start=START) as teams, \
            webex_running(start=START) as webex, goto_running(start=START) as goto:
        yield {"zoom": zoom, "teams": teams, "webex": webex, "goto": goto}


@dataclass
class Answer:
    operation: str  # as in /openapi.json: "POST /session"
    status: int
    body: Any
    retry_after: str | None


class Scene:
    """The LMS, the provider behind its door, and every answer the LMS (or a learner's browser) got."""

    def __init__(self, world: World, door: Door, lms: Lms, db: Db, clock: FixedClock) -> None:
        self.world, self.door, self.lms, self.db, self.clock = world, door, lms, db, clock
        self.answers: list[Answer] = []

    def call(self, operation: str, response: Any) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.answers.append(Answer(operation, response.status_code, body, response.headers.get("retry-after")))
        return response

    def click(self, session_id: str, email: str) -> Any:
        join = self.call(f"GET {LAUNCH}", self.lms.launch(session_id, email))
        assert join.status_code == 200, join.text
        return self.call("GET /l/{token}", self.lms.client.get(join.json()["data"]["joinUrl"].replace(
            "http://testserver", "")))

    def meeting_of(self, session_id: str) -> str | None:
        with self.db.engine.connect() as conn:
            found = conn.execute(sa.text("SELECT meeting_id FROM sessions WHERE external_id = :id"),
                                 {"id": session_id}).scalar_one()
        return None if found is None else str(found)

    def run_jobs(self) -> None:
        app: Any = self.lms.client.app
        runner, portal = JobRunner(app.state.ctx, "fault-test"), self.lms.client.portal
        assert portal is not None
        for _ in range(4):  # a job may owe another (an attendance collection after a meeting)
            if not portal.call(runner.run_due):
                return


def undocumented(answer: Answer, schema: dict[str, Any]) -> str | None:
    method, path = answer.operation.split(" ", 1)
    if answer.status not in documented_statuses(schema, method, path):
        return f"{answer.operation}: HTTP {answer.status} is not documented: {str(answer.body)[:300]}"
    if path == "/l/{token}":
        return None  # a browser's page or redirect, not the LMS's envelope
    if not isinstance(answer.body, dict) or "status" not in answer.body or "correlationId" not in answer.body:
        return f"{answer.operation}: not in the contract's envelope: {str(answer.body)[:300]}"
    if answer.status >= 400 and answer.body.get("error", {}).get("code") != answer.status:
        return f"{answer.operation}: error.code differs from HTTP {answer.status}"
    asks_again = answer.status in (500, 503) or (answer.status == 404 and "attendees" in path)
    if asks_again and not answer.retry_after:  # the contract's "not yet" and "failed": both say when to ask again
        return f"{answer.operation}: HTTP {answer.status} without Retry-After: {str(answer.body)[:300]}"
    return None


def apply(scene: Scene, fault: str) -> None:
    if fault == SERVER_ERROR:
        scene.world.sim.state.inject_fault(503, count=100_000)
    else:
        scene.door.set(Fault(fault))


def recover(scene: Scene, fault: str) -> None:
    from viltbridge.providers.http import _BREAKERS

    if fault == SERVER_ERROR:
        scene.world.sim.state.clear_faults()
    scene.door.set(Fault.NONE)
    for breaker in list(_BREAKERS.values()):  # each waits 30 s of real time before a trial call; a test does not
        breaker.close()


# GetAttendees collects with the background budget: against a provider that is down or answers 5xx it retries for
# about 12 s (until the circuit breaker opens) before answering 500 with Retry-After. Asked only during the faults
# that fail fast, to keep the suite quick.
ASKS_FOR_ATTENDANCE = {Fault.THROTTLED.value, Fault.MALFORMED.value, Fault.WRONG_SHAPE.value}
FAULTS = [Fault.DOWN.value, Fault.SLOW.value, Fault.THROTTLED.value, SERVER_ERROR, Fault.MALFORMED.value,
          Fault.WRONG_SHAPE.value]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", list(WORLDS))
def test_a_provider_failing_loses_nothing_and_the_lms_gets_only_documented_answers(
        kind: str, fault: str, simulators: dict[str, Any], client: TestClient, db: Db, clock: FixedClock) -> None:
    world = WORLDS[kind](simulators[kind])
    world.sim.reset(start=START - timedelta(minutes=10))
    world.seed(world.sim)
    door = Door(world.sim._app)
    try:
        settings = {k: v.replace(world.sim.base_url, door.url) if isinstance(v, str) else v
                    for k, v in world.settings(world.sim).items()}
        created = db.create_connection(f"acme-{kind}", kind, **settings)
        scene = Scene(world, door, Lms(client, created["username"], created["password"]), db, clock)
        play(scene, fault)
    finally:
        door.close()


def play(scene: Scene, fault: str) -> None:
    lms, world, clock = scene.lms, scene.world, scene.clock
    schema = lms.call("GET", "/openapi.json").json()
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    bodies = {
        "ran": session_body("ran", start=START, InstructorEmails=TESS),
        "edited": session_body("edited", start=START + timedelta(days=1), InstructorEmails=TESS),
        "cancelled": session_body("cancelled", start=START + timedelta(days=2), InstructorEmails=TESS),
        "opening": session_body("opening", start=ASKED_AT + timedelta(minutes=5), InstructorEmails=TESS),
        "new": session_body("new", start=START + timedelta(days=3), InstructorEmails=TESS),
    }
    clock.set(START - timedelta(minutes=10))
    for session_id in ("ran", "edited", "cancelled", "opening"):
        saved = lms.create_session(bodies[session_id])
        assert saved.status_code == 200 and "message" not in saved.json(), saved.text
    clock.set(START - timedelta(minutes=5))
    assert scene.click("ran", JANE).status_code == 302  # her personal link: how the provider will name her
    ran_meeting = scene.meeting_of("ran")
    assert ran_meeting is not None
    world.attend(world.sim, ran_meeting)
    clock.set(ASKED_AT)
    scene.answers.clear()

    apply(scene, fault)
    slow = fault == Fault.SLOW.value  # each call waits out a timeout: the saves and a click are enough to show it
    scene.call("POST /session", lms.create_session(bodies["new"]))
    if not slow:
        scene.call("PUT /session/{SessionId}", lms.update_session("edited", {**bodies["edited"],
                                                                              "Title": "Renamed in the outage"}))
        scene.call("DELETE /session/{SessionId}", lms.cancel_session("cancelled"))
    scene.click("opening", "kim@example.com")
    if fault in ASKS_FOR_ATTENDANCE:
        scene.call("GET /session/{SessionId}/attendees", lms.attendees("ran"))
    hit = scene.door.calls_hit
    recover(scene, fault)

    print(f"\n{world.kind} {fault}: " + ", ".join(f"{a.operation.split(' ')[0]} {a.operation.split(' ')[1][:24]} "
                                                   f"{a.status}" for a in scene.answers))
    wrong = [reason for answer in scene.answers if (reason := undocumented(answer, schema))]
    assert wrong == [], wrong
    if fault == Fault.DOWN.value:
        assert "could not connect" in scene.answers[0].body["message"], scene.answers[0].body
    else:
        assert fault == SERVER_ERROR or hit > 0, "the fault never met a provider call"
    saves = [a for a in scene.answers if a.operation.split(" ")[0] in ("POST", "PUT", "DELETE")]
    assert all(a.status == 200 for a in saves), [(a.operation, a.status, a.body) for a in saves]  # all kept

    clock.set(ASKED_AT + timedelta(hours=6))  # every retry's backoff has passed
    scene.run_jobs()
    with scene.db.engine.connect() as conn:
        rows = {r[0]: (r[1], r[2], r[3]) for r in conn.exec_driver_sql(
            "SELECT external_id, meeting_id, meeting_pending, meeting_error FROM sessions")}
    assert set(rows) == set(bodies), rows  # every session kept
    assert [(sid, row) for sid, row in rows.items() if row[1] is not None] == [], "provider work still owed"
    live = world.live_meetings(world.sim)
    expected = {sid for sid in bodies if slow or sid != "cancelled"}
    assert len(live) == len(expected), live  # exactly one meeting per part: nothing created twice
    assert {str(rows[sid][0]) for sid in expected} == set(live)
    if not slow:
        assert live[str(rows["edited"][0])] == "Renamed in the outage"
    attended = lms.attendees("ran")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": JANE}]  # the segment the provider had is all there


@pytest.fixture(scope="module")
def bbb_simulator() -> Iterator[BbbSimulator]:
    with bbb_running(start=START) as simulator:
        yield simulator


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != SERVER_ERROR])  # BBB's simulator plays no 5xx
def test_bigbluebutton_failing_loses_nothing_and_the_lms_gets_only_documented_answers(
        fault: str, bbb_simulator: BbbSimulator, client: TestClient, db: Db, clock: FixedClock) -> None:
    """BigBlueButton keeps no schedule (a meeting exists while it runs, its id derives from the session), so here
    the faults meet the save's create, the cancel's end and the launch's create; attendance comes from its
    analytics callback, not from a call that could fail."""
    sim = bbb_simulator
    sim.reset(start=START)
    door = Door(sim._app)
    try:
        settings = {k: v.replace(sim.base_url, door.url) for k, v in sim.settings().items()}
        created = db.create_connection("acme-bbb", "bbb", **settings)
        lms = Lms(client, created["username"], created["password"])
        scene = Scene(World("bbb", sim, lambda s: s.settings(), lambda s: None, lambda s: {}, lambda s, m: None),
                      door, lms, db, clock)
        schema = lms.call("GET", "/openapi.json").json()
        clock.set(ASKED_AT)
        for session_id, start in (("cancelled", START + timedelta(days=2)),
                                  ("opening", ASKED_AT + timedelta(minutes=5))):
            assert lms.create_session(session_body(session_id, start=start)).status_code == 200
        cancelled_meeting = scene.meeting_of("cancelled")
        assert cancelled_meeting in sim.state.meetings

        apply(scene, fault)
        scene.call("POST /session", lms.create_session(session_body("new", start=START + timedelta(days=3))))
        slow = fault == Fault.SLOW.value  # each call waits out a timeout: a save and a click are enough to show it
        if not slow:
            scene.call("DELETE /session/{SessionId}", lms.cancel_session("cancelled"))
        scene.click("opening", "kim@example.com")
        recover(scene, fault)
        clock.set(ASKED_AT + timedelta(hours=6))
        scene.run_jobs()
    finally:
        door.close()

    wrong = [reason for answer in scene.answers if (reason := undocumented(answer, schema))]
    assert wrong == [], wrong
    assert all(a.status == 200 for a in scene.answers if a.operation.startswith(("POST", "DELETE")))
    assert scene.answers[-1].status == 302  # the signed join link needs no call: the learner goes in anyway
    with db.engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT external_id, meeting_pending FROM sessions").all())
    assert rows == {"cancelled": None, "opening": None, "new": None}  # all kept, nothing owed any more
    assert scene.meeting_of("new") in sim.state.meetings  # created once the server was back
    assert slow or cancelled_meeting not in sim.state.meetings
