"""The Cornerstone workflow with a `goto` connection pointed at the simulator, through the contract over HTTP:
instructors (only organizers of the GoTo account may teach), a session created and edited in place, launches
through our redirect (a fresh start link for the instructor, a personal registrant link per learner), people
joining and leaving GoTo Training, attendance from GoTo's report tied to learners by their registrant keys, cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, b64, session_body
from tests.providers.goto.conftest import fresh
from viltbridge.core.clock import FixedClock
from viltbridge.core.models import Connection, VendorOptions
from viltbridge.providers.goto.adapter import GotoProvider
from viltbridge.providers.goto.simulator import GotoSimulator
from viltbridge.providers.pool import ProviderPool

START = NOW + timedelta(minutes=5)


def follow(lms: Lms, session_id: str, email: str) -> str:
    """A person clicks Launch in the LMS: where our launch redirect sends them."""
    join = lms.call("GET", f"/session/{session_id}/user/{b64(email)}/url")
    assert join.status_code == 200, join.text
    followed = lms.client.get(join.json()["data"]["joinUrl"].replace("http://testserver", ""))
    assert followed.status_code == 302, followed.text
    return str(followed.headers["location"])


def rows(db: Db, sql: str) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.exec_driver_sql(sql)]


def test_the_whole_workflow_on_goto_training(client: TestClient, db: Db, goto_simulator: GotoSimulator,
                                             clock: FixedClock) -> None:
    sim = fresh(goto_simulator, start=START - timedelta(minutes=10))  # the class happens on the simulator's clock
    created = db.create_connection("acme-goto", "goto", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    unknown = lms.add_instructor("nobody@example.com")
    assert unknown.status_code == 400
    assert "not a GoTo Training organizer" in unknown.json()["error"]["message"]

    body = session_body("g-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms.create_session(body).status_code == 200
    [training_key] = [row["meeting_id"] for row in rows(db, "SELECT meeting_id FROM sessions")]
    assert lms.update_session("g-1", {**body, "Title": "Forklift safety"}).status_code == 200
    training = sim.state.trainings[training_key]
    assert training.name == "Forklift safety" and len(sim.state.trainings) == 1  # updated in place
    assert training.description.endswith("[viltbridge:1:g-1]")

    clock.set(START - timedelta(minutes=5))
    host = follow(lms, "g-1", "tess@example.com")
    assert f"/start/{training_key}/" in host  # the organizer's start link, fresh on every click
    assert follow(lms, "g-1", "tess@example.com") != host
    learners = {email: follow(lms, "g-1", email) for email in ("Jane@Example.com", "bob@example.com",
                                                               "kim@example.com")}
    assert all(f"/join/training/{training_key}/" in url for url in learners.values())
    assert len(set(learners.values())) == 3  # one personal link each
    assert follow(lms, "g-1", "Jane@Example.com") == learners["Jane@Example.com"]  # the same registration
    assert len(training.registrants) == 3
    stored = " ".join(str(row["provider_url"]) for row in rows(db, "SELECT provider_url FROM launches"))
    assert "/start/" not in stored and "/join/training/" not in stored  # links are credentials: encrypted

    state = sim.state
    state.join(training_key, "tess@example.com", at=START)
    state.join(training_key, "jane@example.com", at=START + timedelta(minutes=1))
    state.leave(training_key, "jane@example.com", at=START + timedelta(minutes=25))
    state.join(training_key, "jane@example.com", at=START + timedelta(minutes=30))  # back after a dropout
    state.join(training_key, "bob@example.com", at=START + timedelta(minutes=2))
    state.leave(training_key, "bob@example.com", at=START + timedelta(minutes=12))  # ten minutes: not enough
    state.end_session(training_key, at=START + timedelta(minutes=60))  # Kim never came

    clock.set(START + timedelta(minutes=65))
    early = lms.attendees("g-1")  # GoTo has no report yet
    assert early.status_code == 404 and int(early.headers["retry-after"]) > 0

    state.set_clock(START + timedelta(minutes=75))  # GoTo reports the session some minutes after its end
    clock.set(START + timedelta(minutes=75))
    attended = lms.attendees("g-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]  # the LMS's own spelling
    assert rows(db, "SELECT attendance_state FROM sessions")[0]["attendance_state"] == "final"
    results = {row["email"]: row for row in rows(db, "SELECT email, attended, explanation FROM attendance_results")}
    assert set(results) == {"Jane@Example.com", "bob@example.com"}
    assert "2 segment(s) matched by personal_id" in results["Jane@Example.com"]["explanation"]
    assert "1 segment(s) matched by personal_id" in results["bob@example.com"]["explanation"]
    assert not results["bob@example.com"]["attended"]

    assert lms.cancel_session("g-1").status_code == 200
    assert training.deleted
    assert lms.cancel_session("g-1").status_code == 200


def test_a_rotated_refresh_token_is_stored_and_survives_a_restart(db: Db, goto_simulator: GotoSimulator,
                                                                  settings: Any, clock: FixedClock) -> None:
    """GoTo answers every renewal with a new refresh token and revokes the old one: the new one must be stored
    with the connection (encrypted, audited without its value), or the next restart could not reach GoTo."""
    from viltbridge.web.app import create_app

    sim = fresh(goto_simulator, start=START - timedelta(minutes=10), rotate_refresh_tokens=True)
    created = db.create_connection("acme-goto", "goto", **sim.settings())
    configured = sim.settings()["refresh_token"]
    with TestClient(create_app(settings, clock=clock, public_url="http://testserver")) as first:
        lms = Lms(first, created["username"], created["password"])
        assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
        sim.state.expire_tokens()  # the hour is over: the next call renews again, with the rotated token
        made = lms.create_session(session_body("g-2", start=START, InstructorEmails="tess@example.com"))
        assert made.status_code == 200, made.text
    issued = sim.state.issued_refresh_tokens
    assert len(issued) == 2
    [row] = rows(db, "SELECT provider_settings FROM connections")
    stored = db.keyring.decrypt_json(row["provider_settings"])
    assert stored["refresh_token"] == issued[-1] != configured
    audit = rows(db, "SELECT actor, action, after FROM audit_log WHERE actor = 'provider:goto'")
    assert [entry["action"] for entry in audit] == ["connection.change", "connection.change"]
    assert not any(token in str(audit) for token in issued)  # audited, never with the value

    sim.state.expire_tokens()
    with TestClient(create_app(settings, clock=clock, public_url="http://testserver")) as restarted:
        lms = Lms(restarted, created["username"], created["password"])  # the configured token is revoked by now
        again = lms.update_session("g-2", session_body("g-2", start=START, InstructorEmails="tess@example.com",
                                                       Title="Renamed after a restart"))
        assert again.status_code == 200, again.text


async def test_a_request_that_read_the_settings_before_a_rotation_was_stored_keeps_the_renewed_adapter(
        goto_simulator: GotoSimulator) -> None:
    """A request reads the connection, another renews GoTo's token (which rotates and revokes the refresh token)
    and stores the new one, then the first asks the pool for the adapter: it must get the one holding the new token,
    not a new adapter built from the revoked one (a 400 "authorise again" on a healthy connection)."""
    sim = fresh(goto_simulator, rotate_refresh_tokens=True)
    stored: dict[str, Any] = dict(sim.settings())

    async def write(connection: Connection, changes: Mapping[str, str]) -> None:
        stored.update(changes)

    async def read(connection: Connection) -> Mapping[str, Any]:
        return stored

    pool = ProviderPool(write_settings=write, read_settings=read)
    before = Connection(id=1, name="acme-goto", provider="goto", provider_settings=dict(sim.settings()),
                        username="lms", options=VendorOptions(), active=True)
    adapter = pool.for_connection(before)
    assert isinstance(adapter, GotoProvider)
    await adapter.client.list_trainings()  # renews: GoTo rotates the refresh token
    for _ in range(100):  # the new token is written after the call, off the request's path
        if stored["refresh_token"] != before.provider_settings["refresh_token"]:
            break
        await asyncio.sleep(0.01)
    after = replace(before, provider_settings=dict(stored))
    assert after.provider_settings["refresh_token"] == sim.state.issued_refresh_tokens[-1]
    assert pool.for_connection(before) is adapter  # read before the write: still the adapter with the new token
    assert pool.for_connection(after) is adapter  # read after it: the same
    edited = replace(after, provider_settings={**stored, "client_secret": "changed-by-an-admin"})
    assert pool.for_connection(edited) is not adapter  # an admin's change builds a new one
    await pool.aclose()


def test_a_session_goto_refuses_as_it_is_gets_a_400_with_gotos_reason_and_nothing_saved(
        client: TestClient, db: Db, goto_simulator: GotoSimulator) -> None:
    sim = fresh(goto_simulator, start=START + timedelta(days=2))  # GoTo's clock is two days ahead: START is past
    created = db.create_connection("acme-goto", "goto", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200

    refused = lms.create_session(session_body("g-9", start=START, InstructorEmails="tess@example.com"))
    assert refused.status_code == 400, refused.text  # the person who saved can correct it: not a SystemError
    assert refused.json()["status"] == "ValidationError"
    assert "cannot start in the past" in refused.json()["error"]["message"]
    assert rows(db, "SELECT external_id FROM sessions") == []
    assert rows(db, "SELECT kind FROM jobs") == []  # nothing owed to GoTo either: waiting would not help
