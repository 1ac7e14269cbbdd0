"""The Cornerstone workflow with a `zoom` connection pointed at the simulator, through the contract over HTTP:
a learner who joins as a guest under another name is still credited to the right LMS email."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import NOW, Db, Lms, session_body
from tests.processes import wait_for
from viltbridge.providers.zoom.simulator import ZoomSimulator

START = NOW + timedelta(minutes=5)


def click(lms: Lms, session_id: str, email: str) -> str:
    from tests.conftest import b64

    join_url = lms.call("GET", f"/session/{session_id}/user/{b64(email)}/url").json()["data"]["joinUrl"]
    redirect = lms.client.get(join_url.replace("http://testserver", ""))
    assert redirect.status_code == 302, redirect.text
    return str(redirect.headers["location"])


def test_a_guest_under_another_name_is_credited_to_the_lms_email(zoom_lms: Lms, zoom_simulator: ZoomSimulator,
                                                                 db: Db, clock) -> None:
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    unknown = zoom_lms.add_instructor("nobody@example.com")
    assert unknown.status_code == 400 and "not a user on this Zoom account" in unknown.json()["error"]["message"]
    body = session_body("z-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert zoom_lms.create_session(body).status_code == 200
    assert zoom_lms.update_session("z-1", {**body, "Title": "Forklift safety"}).status_code == 200
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    host_link = click(zoom_lms, "z-1", "tess@example.com")
    jane_link = click(zoom_lms, "z-1", "Jane.Doe@example.com")
    assert f"/s/{meeting_id}?zak=" in host_link  # a fresh start link for the host
    assert "tk=" in jane_link  # her personal registrant link
    click(zoom_lms, "z-1", "bob@example.com")
    with db.engine.connect() as conn:
        stored = " ".join(conn.exec_driver_sql("SELECT provider_url FROM launches").scalars())
    assert "zak=" not in stored and "tk=" not in stored  # start and registrant links are credentials: encrypted

    state = zoom_simulator.state
    state.start_meeting(meeting_id)
    state.join(meeting_id, "Laptop of J.", registrant="jane.doe@example.com")  # a guest, under another name
    state.join(meeting_id, "Bob", registrant="bob@example.com")
    state.advance_clock(10 * 60)
    state.leave(meeting_id, "Bob")  # ten minutes: not enough
    state.advance_clock(40 * 60)
    state.leave(meeting_id, "Laptop of J.")
    state.end_meeting(meeting_id)

    provisional = zoom_lms.attendees("z-1")
    assert provisional.status_code == 200
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "provisional"
    state.mark_report_processed(meeting_id)
    assert zoom_lms.attendees("z-1").status_code == 200
    with db.engine.connect() as conn:  # Zoom's report is complete, but the class is not over yet
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "provisional"
    clock.set(START + timedelta(minutes=61))
    final = zoom_lms.attendees("z-1")
    assert final.status_code == 200
    assert final.json()["data"]["attendees"] == [{"email": "Jane.Doe@example.com"}]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"


def test_attendance_before_zoom_has_a_report_says_when_to_retry(zoom_lms: Lms) -> None:
    zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher")
    zoom_lms.create_session(session_body("z-2", start=START, InstructorEmails="tess@example.com"))
    response = zoom_lms.attendees("z-2")
    assert response.status_code == 404
    assert "no attendance" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0


def test_cancelling_deletes_the_zoom_meeting(zoom_lms: Lms, zoom_simulator: ZoomSimulator) -> None:
    zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher")
    zoom_lms.create_session(session_body("z-3", start=START, InstructorEmails="tess@example.com"))
    assert zoom_lms.cancel_session("z-3").status_code == 200
    assert zoom_lms.cancel_session("z-3").status_code == 200
    assert all(m["deleted"] for m in zoom_simulator.state.snapshot()["meetings"])


def test_changed_settings_retire_the_old_adapter_and_close_its_connections(zoom_lms: Lms, db: Db) -> None:
    from viltbridge.app import connections
    from viltbridge.providers.zoom.adapter import ZoomProvider

    pool = zoom_lms.client.app.state.ctx.providers
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    [old] = pool.adapters()
    assert isinstance(old, ZoomProvider) and not old.client.http._client.is_closed
    with db.session() as s, s.begin():
        connections.change(s, db.keyring, "acme-zoom", {"plan": "business"})
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    [new] = pool.adapters()
    assert new is not old and new.settings.plan == "business"
    # The retirement runs as a task on the app's loop (the test client's portal thread), after the call answered.
    wait_for(lambda: old.client.http._client.is_closed, what="the retired adapter's connections to close")


def test_a_learner_zoom_cannot_register_in_time_is_held_then_gets_a_personal_link(
        zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db) -> None:
    from tests.conftest import b64

    zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher")
    zoom_lms.create_session(session_body("z-4", start=START, InstructorEmails="tess@example.com"))
    launch = zoom_lms.call("GET", f"/session/z-4/user/{b64('kim@example.com')}/url").json()["data"]["joinUrl"]
    path = launch.replace("http://testserver", "")
    zoom_simulator.state.inject_fault(429, count=50, path="registrants")  # Zoom says no for a while
    held = zoom_lms.client.get(path)
    assert held.status_code == 200 and "Getting your personal link" in held.text
    assert 'http-equiv="refresh"' in held.text and "attempt=1" in held.text
    assert held.headers["referrer-policy"] == "no-referrer" and held.headers["cache-control"] == "no-store"
    with db.engine.connect() as conn:  # held is not launched: nothing recorded yet
        assert conn.exec_driver_sql("SELECT count(*) FROM launches").scalar_one() == 0

    zoom_simulator.state.clear_faults()  # Zoom recovers while the page waits
    again = zoom_lms.client.get(path + "?attempt=1")
    assert again.status_code == 302 and "tk=" in again.headers["location"]

    zoom_simulator.state.inject_fault(429, count=50, path="registrants")
    last = zoom_lms.client.get(path)
    # Kim's personal link is in the ledger now: her next click needs no registration at all.
    assert last.status_code == 302 and "tk=" in last.headers["location"]

    lee = zoom_lms.call("GET", f"/session/z-4/user/{b64('lee@example.com')}/url").json()["data"]["joinUrl"]
    gave_up = zoom_lms.client.get(lee.replace("http://testserver", "") + "?attempt=2")
    assert gave_up.status_code == 302 and "/meeting/register/" in gave_up.headers["location"]  # the last resort
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, personal, identity FROM launches ORDER BY id").all()
    assert [(r[0], bool(r[1])) for r in rows] == [("kim@example.com", True), ("kim@example.com", True),
                                                   ("lee@example.com", False)]
    assert "registration_form" in str(rows[-1][2])  # JSON: text on SQLite, a dict on PostgreSQL
    assert "registration failed" in str(rows[-1][2])  # and why, kept with the click


def test_an_instructor_the_lms_deactivates_is_deactivated_at_zoom_when_the_connection_says_so(
        zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db) -> None:
    from viltbridge.app import connections

    with db.session() as s, s.begin():
        connections.change(s, db.keyring, "acme-zoom", {"deactivated_hosts": "deactivate"})
    zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher")
    body = {"OldEmail": "tess@example.com", "NewEmail": "tess@example.com", "FirstName": "Tess",
            "LastName": "Teacher", "IsActive": False}
    assert zoom_lms.call("PUT", "/instructor", json=body).status_code == 200
    assert zoom_simulator.state.find_user("tess@example.com").status == "inactive"  # type: ignore[union-attr]
    assert zoom_lms.call("PUT", "/instructor", json={**body, "IsActive": True}).status_code == 200
    assert zoom_simulator.state.find_user("tess@example.com").status == "active"  # type: ignore[union-attr]
