"""The Cornerstone workflow with a `jitsi` connection, all over real HTTP: the LMS calls the running connector, people
follow their launch redirect to the simulated JaaS and join with their token, JaaS posts signed webhooks to the
connector's `POST /webhooks/<connection>`, and the LMS gets attendance tied to each learner by the personal id their
token carried. Then a self-hosted server without an event module, where attendance is launch-only and says so."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx2
import pytest

from tests.conftest import NOW, Db, session_body
from tests.providers.conftest import Capture
from viltbridge.core.clock import FixedClock
from viltbridge.providers.jitsi import webhooks
from viltbridge.providers.jitsi.simulator import JitsiSimulator
from viltbridge.web.webhooks import NOT_VERIFIED

START = NOW + timedelta(minutes=5)


def b64(email: str) -> str:
    return base64.b64encode(email.encode()).decode()


class World:
    """The LMS, the connector's clock and the simulator's clock, moved together (webhook signatures are dated by
    JaaS's clock and checked against the connector's)."""

    def __init__(self, live_server: str, lms: httpx2.Client, sim: JitsiSimulator, clock: FixedClock) -> None:
        self.live_server, self.lms, self.sim, self.clock = live_server, lms, sim, clock

    def at(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.sim.state.advance((moment - self.sim.state.now()).total_seconds())

    def launch(self, email: str, session: str = "w-1") -> str:
        """Cornerstone's launch call, then the person's browser following our redirect: the provider URL."""
        answer = self.lms.get(f"/session/{session}/user/{b64(email)}/url")
        assert answer.status_code == 200, answer.text
        join = answer.json()["data"]["joinUrl"].replace("http://testserver", self.live_server)
        followed = httpx2.get(join)
        assert followed.status_code == 302, followed.text
        assert followed.headers["referrer-policy"] == "no-referrer"
        return str(followed.headers["location"])


def connect(live_server: str, db: Db, sim: JitsiSimulator, clock: FixedClock, name: str) -> Iterator[World]:
    created = db.create_connection(name, "jitsi", **sim.settings())
    with httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]),
                       headers={"correlationId": "corr-jitsi"}, timeout=20) as lms:
        yield World(live_server, lms, sim, clock)


@pytest.fixture
def jaas(live_server: str, db: Db, jitsi_simulator: JitsiSimulator, clock: FixedClock) -> Iterator[World]:
    jitsi_simulator.reset(start=NOW, deployment="jaas", webhook_url=f"{live_server}/webhooks/acme-jitsi",
                          duplicate_deliveries=True)  # JaaS may deliver twice: each event must be kept once
    yield from connect(live_server, db, jitsi_simulator, clock, "acme-jitsi")


def stored_events(db: Db) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT event FROM provider_events ORDER BY occurred_at, id").scalars())


def meeting_id(db: Db) -> str:
    with db.engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one())


def test_the_whole_workflow_on_jaas(jaas: World, db: Db) -> None:
    lms, state = jaas.lms, jaas.sim.state
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    body = session_body("w-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms.post("/session", json=body).status_code == 200
    room = meeting_id(db)
    assert lms.put("/session/w-1", json={**body, "Title": "Forklift safety"}).status_code == 200
    assert meeting_id(db) == room  # the room (and every link to it) survives the edit

    jaas.at(START - timedelta(minutes=5))
    links = {email: jaas.launch(email) for email in ("tess@example.com", "Jane@Example.com", "bob@example.com",
                                                     "amy@example.com")}
    assert len(set(links.values())) == 4 and all(f"/{room}?jwt=" in url for url in links.values())
    assert httpx2.get(links["tess@example.com"]).status_code == 200  # the instructor opens the room
    assert httpx2.get(links["Jane@Example.com"]).status_code == 200
    assert httpx2.get(links["bob@example.com"]).status_code == 200  # amy launched but never came in
    assert [p["moderator"] for p in state.present(room)] == [True, False, False]
    # The token names the instructor as the LMS did in POST /instructor; learners by their email (no name in a launch).
    assert [p["name"] for p in state.present(room)] == ["Tess Teacher", "Jane@Example.com", "bob@example.com"]

    jaas.at(START + timedelta(minutes=10))
    state.leave(room, "bob@example.com")  # ten minutes: not enough
    early = lms.get("/session/w-1/attendees")  # during the class: the best known, provisional
    assert early.status_code == 200, early.text

    capture, logger = Capture(), logging.getLogger("viltbridge.webhooks")
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        joined = state.deliveries[0]
        forged = httpx2.post(f"{jaas.live_server}/webhooks/acme-jitsi", content=joined.body,
                             headers={**joined.headers, "X-Jaas-Signature": "t=1,v1=Zm9yZ2Vk"})
        assert forged.status_code == 403 and forged.json()["error"] == NOT_VERIFIED
        replayed = httpx2.post(f"{jaas.live_server}/webhooks/acme-jitsi", content=joined.body,
                               headers=joined.headers)  # signed 15 minutes ago
        assert replayed.status_code == 403 and replayed.json()["error"] == NOT_VERIFIED
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    # The sender is told nothing; the operator's log says which check failed.
    refusals = [line for line in capture.lines if "webhook for acme-jitsi refused (403)" in line]
    assert len(refusals) == 2 and "JaaS webhook refused" in refusals[0] and "ago" in refusals[1], refusals

    jaas.at(START + timedelta(minutes=60))
    state.destroy_room(room)  # Tess ends the meeting for all
    assert all(status == 200 for d in state.deliveries for status in d.statuses)
    assert len(state.deliveries) == 2 * len(state.history)  # every delivery went twice ...
    assert len(stored_events(db)) == len(state.history)  # ... and each event is kept once
    assert stored_events(db)[0] == "ROOM_CREATED" and stored_events(db)[-1] == "ROOM_DESTROYED"

    jaas.at(START + timedelta(minutes=80))
    attended = lms.get("/session/w-1/attendees")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]  # the LMS's own spelling
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"
        rows = conn.exec_driver_sql("SELECT email, explanation FROM attendance_results").all()
    explained: dict[str, str] = {str(email): str(why) for email, why in rows}
    assert "matched by personal_id" in explained["Jane@Example.com"], explained
    assert "matched by personal_id" in explained["bob@example.com"], explained
    assert "tess@example.com" not in explained  # the instructor is not an attendee

    assert lms.delete("/session/w-1").status_code == 200
    assert lms.delete("/session/w-1").status_code == 200
    assert lms.get(f"/session/w-1/user/{b64('jane@example.com')}/url").status_code >= 400


def test_a_token_for_one_room_does_not_open_another(jaas: World, db: Db) -> None:
    lms = jaas.lms
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    for session in ("w-1", "w-2"):
        assert lms.post("/session", json=session_body(session, start=START, Title=f"Part {session}",
                                                      InstructorEmails="tess@example.com")).status_code == 200
    jaas.at(START)
    first, second = jaas.launch("jane@example.com", "w-1"), jaas.launch("jane@example.com", "w-2")
    crossed = first.split("?jwt=")[0] + "?jwt=" + second.split("?jwt=")[1]
    refused = httpx2.get(crossed)
    assert refused.status_code == 403 and "not" in refused.text
    assert jaas.sim.state.history == []  # no one got in


@pytest.fixture
def self_hosted(live_server: str, db: Db, jitsi_simulator: JitsiSimulator, clock: FixedClock) -> Iterator[World]:
    jitsi_simulator.reset(start=NOW, deployment="self_hosted")
    yield from connect(live_server, db, jitsi_simulator, clock, "acme-meet")


def test_self_hosted_without_events_is_launch_only(self_hosted: World, db: Db) -> None:
    world, lms = self_hosted, self_hosted.lms
    assert lms.post("/instructor", json={"Email": "mo@example.com", "FirstName": "Mo",
                                         "LastName": "Moderator"}).status_code == 200
    assert lms.post("/session", json=session_body("m-1", start=START, minutes=60)).status_code == 200
    room = meeting_id(db)
    world.at(START - timedelta(minutes=5))
    jane = world.launch("jane@example.com", "m-1")
    assert jane.startswith(f"{world.sim.base_url}/{room}?jwt=")
    assert httpx2.get(jane).status_code == 200
    assert httpx2.get(world.launch("mo@example.com", "m-1")).status_code == 200  # an active instructor hosts
    assert [(p["email"], p["name"], p["moderator"]) for p in world.sim.state.present(room)] == [
        ("jane@example.com", "jane@example.com", False), ("mo@example.com", "Mo Moderator", True)]
    refused = httpx2.post(f"{world.live_server}/webhooks/acme-meet", content=b"{}",
                          headers={webhooks.SIGNATURE_HEADER: "t=1,v1=x"})
    assert refused.status_code == 403 and refused.json()["error"] == NOT_VERIFIED  # it sends none: nothing taken in
    world.at(START + timedelta(minutes=70))
    attended = lms.get("/session/m-1/attendees")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "jane@example.com"}]


@pytest.fixture
def late(live_server: str, db: Db, jitsi_simulator: JitsiSimulator, clock: FixedClock) -> Iterator[World]:
    jitsi_simulator.reset(start=NOW, deployment="jaas", webhook_url=f"{live_server}/webhooks/acme-late",
                          hold_deliveries=True)  # JaaS delivers late and in any order
    yield from connect(live_server, db, jitsi_simulator, clock, "acme-late")


def test_deliveries_out_of_order_give_the_same_attendance(late: World, db: Db) -> None:
    world, lms, state = late, late.lms, late.sim.state
    assert lms.post("/session", json=session_body("o-1", start=START, minutes=60)).status_code == 200
    room = meeting_id(db)
    world.at(START)
    assert httpx2.get(world.launch("jane@example.com", "o-1")).status_code == 200
    assert httpx2.get(world.launch("bob@example.com", "o-1")).status_code == 200
    world.at(START + timedelta(minutes=50))
    state.leave(room, "jane@example.com")
    world.at(START + timedelta(minutes=60))
    state.destroy_room(room)  # bob never left: his segment closes with the room
    assert stored_events(db) == []
    assert state.flush_webhooks() == [200] * 6  # newest first
    world.at(START + timedelta(minutes=80))
    attended = lms.get("/session/o-1/attendees")
    assert attended.status_code == 200, attended.text
    assert sorted(a["email"] for a in attended.json()["data"]["attendees"]) == ["bob@example.com",
                                                                                "jane@example.com"]
