"""Sessions through the contract: create, update, cancel, multi-part, idempotency, envelopes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, Db, Lms, session_body


def test_create_answers_with_the_success_envelope_echoing_the_correlation_id(lms: Lms) -> None:
    response = lms.create_session(session_body())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "correlationId", "timestamp"}
    assert body["status"] == "Success"
    assert body["correlationId"] == "corr-123"
    # YYYY-MM-DDTHH:mm:ss.SSS+00:00
    assert len(body["timestamp"]) == 29 and body["timestamp"].endswith("+00:00")


def test_keys_are_matched_case_insensitively_and_unknown_keys_ignored(lms: Lms, db: Db) -> None:
    body = {
        "sessionId": "camel-1", "creatorEmail": "admin@example.com", "TITLE": "Camel",
        "dateBegin": "2026-03-02T15:00:00", "dateend": "2026-03-02T16:00:00",
        "timeZone": {"utcoffset": "+01:00"}, "somethingNew": {"x": 1},
    }
    assert lms.create_session(body).status_code == 200
    with db.engine.connect() as conn:
        title, zone, offset = conn.exec_driver_sql(
            "SELECT title, zone, utc_offset_minutes FROM sessions WHERE external_id='camel-1'").one()
    assert (title, offset) == ("Camel", 60)
    assert zone.startswith("Europe/")


def test_a_duplicate_post_updates_the_session_and_keeps_the_meeting(lms: Lms, db: Db) -> None:
    assert lms.create_session(session_body(Title="First")).status_code == 200
    link_before = lms.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    with db.engine.connect() as conn:
        room_before = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()
    assert lms.create_session(session_body(Title="Second")).status_code == 200
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT title, meeting_id FROM sessions").all()
    assert rows == [("Second", room_before)]
    # the link handed out before the edit still leads to the same room
    assert lms.client.get(link_before.replace("http://testserver", "")).status_code == 403  # not open yet


def test_put_replaces_fields_in_place_and_keeps_links(lms: Lms, db: Db, clock) -> None:
    lms.create_session(session_body(start=NOW + timedelta(minutes=10)))
    old_link = lms.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    later = NOW + timedelta(minutes=12)
    response = lms.update_session("sess-1", session_body(start=later, Title="Moved", SessionId=None))
    assert response.status_code == 200, response.text
    with db.engine.connect() as conn:
        title = conn.exec_driver_sql("SELECT title FROM sessions").scalar_one()
    assert title == "Moved"
    clock.set(later - timedelta(minutes=5))
    redirect = lms.client.get(old_link.replace("http://testserver", ""))
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith("https://meet.jit.si/vb-")


def test_put_of_an_unknown_session_creates_it(lms: Lms, db: Db) -> None:
    assert lms.update_session("lost-create", session_body("lost-create")).status_code == 200
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions WHERE external_id='lost-create'").scalar() == 1


def test_put_with_a_different_session_id_in_the_body_is_refused(lms: Lms, db: Db) -> None:
    before = db.snapshot()
    response = lms.update_session("sess-a", session_body("sess-b"))
    assert response.status_code == 400
    assert "differs" in response.json()["error"]["message"]
    assert db.snapshot() == before


def test_delete_is_idempotent(lms: Lms) -> None:
    lms.create_session(session_body())
    assert lms.cancel_session("sess-1").status_code == 200
    assert lms.cancel_session("sess-1").status_code == 200
    assert lms.cancel_session("never-seen").status_code == 200


def test_multi_part_sessions_share_lo_id_and_cancel_per_part(lms: Lms, db: Db) -> None:
    part1 = session_body("part-1", LoId="lo-7")
    part2 = session_body("part-2", start=NOW + timedelta(days=1), LoId="lo-7")
    assert lms.create_session(part1).status_code == 200
    assert lms.create_session(part2).status_code == 200
    assert lms.call("DELETE", "/session/part-2", params={"LoId": "lo-7"}).status_code == 200
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT external_id, lo_id, status, meeting_id FROM sessions ORDER BY external_id").all()
    assert [(r[0], r[1], r[2]) for r in rows] == [("part-1", "lo-7", "scheduled"), ("part-2", "lo-7", "cancelled")]
    assert rows[0][3] != rows[1][3]  # one meeting per part
    assert lms.launch("part-1", "learner@example.com").status_code == 200
    refused = lms.launch("part-2", "learner@example.com")
    assert refused.status_code == 400
    assert "cancelled" in refused.json()["error"]["message"]


def test_a_cancelled_session_saved_again_is_reinstated_with_a_new_meeting(lms: Lms, db: Db) -> None:
    lms.create_session(session_body())
    lms.cancel_session("sess-1")
    assert lms.create_session(session_body()).status_code == 200
    assert lms.launch("sess-1", "learner@example.com").status_code == 200


def test_long_titles_are_stored_whole(lms: Lms, db: Db) -> None:
    title = "T" * 300
    assert lms.create_session(session_body(Title=title, Description="D" * 500)).status_code == 200
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT title FROM sessions").scalar_one() == title


@pytest.mark.parametrize("emails", [
    "a@example.com; b@example.com", "a@example.com,b@example.com", "a@example.com b@example.com",
    ["a@example.com", "B@Example.com"],
])
def test_instructor_emails_in_every_accepted_shape(lms: Lms, db: Db, emails) -> None:
    assert lms.create_session(session_body(InstructorEmails=emails)).status_code == 200
    with db.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT instructor_emails FROM sessions").scalar_one()
    assert "a@example.com" in str(stored) and "b@example.com" in str(stored)


def test_debug_true_logs_the_request_and_its_provider_calls_with_secrets_redacted(lms: Lms, capsys) -> None:
    from viltbridge.observability import configure_logging

    configure_logging("INFO")  # DEBUG lines appear only for requests that ask for them
    quiet = lms.call("POST", "/session", json=session_body("quiet-1"), headers={"correlationId": "plain-1"})
    loud = lms.call("POST", "/session", json=session_body("loud-1"),
                    headers={"debug": "true", "correlationId": "dbg-1"})
    assert quiet.status_code == loud.status_code == 200
    logged = capsys.readouterr().err
    debug_lines = [line for line in logged.splitlines() if " DEBUG " in line]
    assert debug_lines and all("[dbg-1]" in line for line in debug_lines)
    assert any("debug request POST /session" in line and "loud-1" in line for line in debug_lines)
    assert any("link: room" in line for line in debug_lines)  # what it caused at the provider
    assert "quiet-1" not in "".join(debug_lines)
    assert lms.auth[1] not in logged  # never the credentials
    assert "'authorization': '***'" in logged


def test_debug_is_honoured_only_for_authenticated_callers_and_hides_links(lms: Lms, capsys) -> None:
    from tests.conftest import b64
    from viltbridge.observability import configure_logging

    configure_logging("INFO")
    lms.create_session(session_body("s-9"))
    anonymous = lms.client.post("/session", json=session_body("anon"), headers={"debug": "true"})
    assert anonymous.status_code == 401
    assert " DEBUG " not in capsys.readouterr().err
    response = lms.call("GET", f"/session/s-9/user/{b64('a@example.com')}/url", headers={"debug": "true"})
    join_url = response.json()["data"]["joinUrl"]
    logged = capsys.readouterr().err
    assert "debug response body" in logged
    assert join_url not in logged and join_url.rsplit("/", 1)[1] not in logged  # a launch link is a credential


def test_a_put_keeps_what_it_leaves_out_and_clears_what_it_sends_empty(lms: Lms, db: Db) -> None:
    lms.create_session(session_body(InstructorEmails="t@example.com", LoId="lo-1"))
    lms.update_session("sess-1", session_body())  # an older payload without these fields
    with db.engine.connect() as conn:
        emails, lo_id = conn.exec_driver_sql("SELECT instructor_emails, lo_id FROM sessions").one()
    assert "t@example.com" in str(emails) and lo_id == "lo-1"
    lms.update_session("sess-1", session_body(InstructorEmails=[], LoId=""))
    with db.engine.connect() as conn:
        emails, lo_id = conn.exec_driver_sql("SELECT instructor_emails, lo_id FROM sessions").one()
    assert str(emails) == "[]" and lo_id is None


def test_without_automatic_cancellation_the_meeting_stays_and_is_reused(lms: Lms, db: Db, connection) -> None:
    from viltbridge.app import connections

    with db.session() as s, s.begin():
        connections.change(s, db.keyring, connection["name"], {"automatic_cancellation": "false"})
    lms.create_session(session_body())
    with db.engine.connect() as conn:
        room = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()
    assert lms.cancel_session("sess-1").status_code == 200
    assert lms.launch("sess-1", "a@example.com").status_code == 400  # cancelled in the LMS: no launches
    assert lms.create_session(session_body()).status_code == 200
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT meeting_id, status FROM sessions").one() == (room, "scheduled")


def test_with_automatic_cancellation_a_reinstated_session_gets_a_new_meeting(lms: Lms, db: Db) -> None:
    lms.create_session(session_body())
    with db.engine.connect() as conn:
        room = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()
    lms.cancel_session("sess-1")
    lms.create_session(session_body())
    with db.engine.connect() as conn:
        new_room, cancelled = conn.exec_driver_sql("SELECT meeting_id, meeting_cancelled FROM sessions").one()
    assert new_room != room and not cancelled


def test_utc_offset_true_is_not_an_offset(lms: Lms) -> None:
    response = lms.create_session(session_body(TimeZone={"UTCOffset": True}))
    assert response.status_code == 400 and "UTCOffset" in response.json()["error"]["message"]
