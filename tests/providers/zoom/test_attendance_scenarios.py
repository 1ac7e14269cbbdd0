"""Attendance you can trust, through the public API: Zoom (the simulator) sends webhooks to the running server and
keeps reports; the LMS asks GetAttendees. Reconnects, second devices, guests, a restarted meeting, late webhooks,
reports first or last, aliases, and a policy change applied to the kept evidence."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx2
import pytest
from sqlalchemy.orm import Session as OrmSession

from tests.conftest import NOW, Db, session_body
from tests.providers.conftest import zoom_settings
from viltbridge.app import attendance_admin
from viltbridge.core.clock import FixedClock
from viltbridge.providers.zoom.simulator import ZoomSimulator

START = NOW + timedelta(minutes=5)  # a 60-minute part: attended from 45 minutes (75%)
LEARNERS = ("jane@example.com", "bob@example.com", "kim@example.com")


@dataclass
class Classroom:
    lms: httpx2.Client
    server: str
    sim: ZoomSimulator
    db: Db
    clock: FixedClock
    meeting_id: str

    def minutes(self, count: float) -> None:
        self.sim.state.advance_clock(count * 60)

    def deliver_webhooks(self, *, order: str = "sent") -> None:
        """Zoom signs deliveries with its clock; the server checks them against its own, so they agree here."""
        self.clock.set(datetime.fromisoformat(self.sim.state.now().replace("Z", "+00:00")))
        sent = self.sim.state.release_webhooks(order=order)
        assert {delivery["status"] for delivery in sent} <= {200}, sent
        self.sim.state.hold_webhooks()

    def end_class(self, *, report: bool = True) -> None:
        self.sim.state.end_meeting(self.meeting_id)
        if report:
            self.sim.state.mark_report_processed(self.meeting_id)

    def after_the_end(self) -> None:
        self.clock.set(START + timedelta(minutes=61))

    def attendees(self) -> list[str]:
        answer = self.lms.get("/session/c-1/attendees")
        assert answer.status_code == 200, answer.text
        return [row["email"] for row in answer.json()["data"]["attendees"]]

    def state(self) -> str:
        with self.db.engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one())

    def explanations(self) -> dict[str, str]:
        with self.db.engine.connect() as conn:
            return dict(conn.exec_driver_sql("SELECT email, explanation FROM attendance_results").all())

    def reviews(self) -> list[tuple[str, str | None]]:
        with self.db.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT kind, display_name FROM attendance_reviews")]


@pytest.fixture
def classroom(live_server: str, db: Db, zoom_simulator: ZoomSimulator, clock: FixedClock) -> Iterator[Classroom]:
    zoom_simulator.reset(start=NOW)
    state = zoom_simulator.state
    state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    state.configure_webhooks(url=f"{live_server}/webhooks/acme-zoom")
    state.hold_webhooks()
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    with httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=20) as lms:
        assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        assert lms.post("/session", json=session_body("c-1", start=START, minutes=60,
                                                      InstructorEmails="tess@example.com")).status_code == 200
        for learner in LEARNERS:  # each learner's launch registers them: their personal link identifies them
            email = base64.b64encode(learner.encode()).decode()
            link = lms.get(f"/session/c-1/user/{email}/url").json()["data"]["joinUrl"]
            assert httpx2.get(link.replace("http://testserver", live_server)).status_code == 302
        with db.engine.connect() as conn:
            meeting_id = str(conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one())
        state.start_meeting(meeting_id)
        state.advance_clock(5 * 60)  # the scheduled start
        yield Classroom(lms, live_server, zoom_simulator, db, clock, meeting_id)


def test_reconnects_and_second_devices_count_once(classroom: Classroom) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "Jane", registrant="jane@example.com")
    state.join(meeting, "Bob laptop", registrant="bob@example.com")
    state.join(meeting, "Bob phone", registrant="bob@example.com")  # the same 40 minutes twice: still 40
    classroom.minutes(25)
    state.reconnect(meeting, "Jane", gap_seconds=60)  # a drop: 54 minutes in two segments
    classroom.minutes(15)
    state.leave(meeting, "Bob laptop")
    state.leave(meeting, "Bob phone")
    classroom.minutes(15)
    classroom.end_class()
    classroom.deliver_webhooks(order="reversed")
    classroom.after_the_end()
    assert classroom.attendees() == ["jane@example.com"]
    assert classroom.state() == "final"
    explained = classroom.explanations()
    assert "2 segment(s) matched by personal_id" in explained["jane@example.com"]
    assert "present 40 min" in explained["bob@example.com"] and "not attended" in explained["bob@example.com"]


def test_a_guest_join_under_another_name_is_credited_and_an_unlinked_guest_goes_to_review(
        classroom: Classroom) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "iPad (2)", registrant="kim@example.com")  # Kim's link, a guest name, no email
    state.join(meeting, "Stranger")  # the meeting link passed around: nothing ties it to a learner
    classroom.minutes(50)
    classroom.end_class()
    classroom.deliver_webhooks()
    classroom.after_the_end()
    assert classroom.attendees() == ["kim@example.com"]
    assert ("unmatched", "Stranger") in classroom.reviews()
    assert all(name != "Tess Teacher" for _, name in classroom.reviews())  # the host is no one to review


def test_a_restarted_meeting_counts_both_runs_and_one_runs_report_does_not_hide_the_other(
        classroom: Classroom) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "Jane", registrant="jane@example.com")
    classroom.minutes(20)
    state.restart_meeting(meeting, gap_seconds=120, rejoin=True)  # the host ended it for all by mistake
    classroom.minutes(2 + 36)
    classroom.end_class()  # Jane: 20 + 36 = 56 minutes over two runs
    classroom.deliver_webhooks(order="shuffled")
    classroom.after_the_end()
    assert classroom.attendees() == ["jane@example.com"]
    with classroom.db.engine.connect() as conn:
        runs = conn.exec_driver_sql("SELECT count(DISTINCT instance) FROM attendance_segments WHERE source = "
                                    "'report'").scalar_one()
    assert runs == 2


@pytest.mark.parametrize("report_first", [True, False])
def test_webhooks_and_the_report_agree_whichever_comes_first(classroom: Classroom, report_first: bool) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "Jane", registrant="jane@example.com")
    state.join(meeting, "Bob", registrant="bob@example.com")
    classroom.minutes(30)
    state.leave(meeting, "Bob")  # 30 minutes
    classroom.minutes(25)
    classroom.end_class(report=report_first)
    classroom.after_the_end()
    if report_first:
        assert classroom.attendees() == ["jane@example.com"]  # from the report alone
        classroom.deliver_webhooks()  # then the live events arrive late
    else:
        classroom.deliver_webhooks()
        classroom.clock.set(START + timedelta(minutes=61))
        assert classroom.attendees() == ["jane@example.com"]  # from the live events, provisional
        assert classroom.state() == "provisional"
        state.mark_report_processed(meeting)
    classroom.clock.set(START + timedelta(minutes=62))
    assert classroom.attendees() == ["jane@example.com"]
    assert classroom.state() == "final"
    with classroom.db.engine.connect() as conn:
        sources = dict(conn.exec_driver_sql(
            "SELECT source, count(*) FROM attendance_segments GROUP BY source").all())
    assert sources.get("report", 0) >= 3 and sources.get("webhook", 0) >= 3  # both kept; neither double-counted


def test_a_policy_change_is_applied_to_the_kept_evidence_without_asking_zoom(classroom: Classroom) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "Jane", registrant="jane@example.com")
    state.join(meeting, "Bob", registrant="bob@example.com")
    classroom.minutes(40)
    state.leave(meeting, "Bob")  # 40 of 60 minutes: 66%
    classroom.minutes(15)
    classroom.end_class()
    classroom.after_the_end()
    assert classroom.attendees() == ["jane@example.com"]
    assert classroom.state() == "final"
    with OrmSession(classroom.db.engine) as db, db.begin():
        attendance_admin.set_policy(db, "acme-zoom", {"min_percent": 60})
    state.inject_fault(500, count=1000)  # Zoom is not asked again: the ledger is the answer once final
    assert classroom.attendees() == ["bob@example.com", "jane@example.com"]
    assert "threshold 60%" in classroom.explanations()["bob@example.com"]
    with OrmSession(classroom.db.engine) as db, db.begin():  # one session can have its own stricter rule
        attendance_admin.set_policy(db, "acme-zoom", {"min_percent": 95}, session="c-1")
    assert classroom.attendees() == []
    state.clear_faults()


def test_an_alias_ties_a_personal_zoom_account_to_the_lms_email(classroom: Classroom) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.join(meeting, "Kim at home", email="kim.home@example.net")  # joined with the plain link, own account
    classroom.minutes(50)
    classroom.end_class()
    classroom.after_the_end()
    with OrmSession(classroom.db.engine) as db, db.begin():
        attendance_admin.set_alias(db, "acme-zoom", "Kim.Home@example.net", "kim@example.com")
    assert classroom.attendees() == ["kim@example.com"]
    assert "matched by alias" in classroom.explanations()["kim@example.com"]


@pytest.mark.parametrize("report", [True, False], ids=["report", "webhooks only"])
def test_a_signed_in_zoom_user_who_never_launched_is_credited_and_a_typed_email_is_not(
        classroom: Classroom, report: bool) -> None:
    state, meeting = classroom.sim.state, classroom.meeting_id
    state.seed_user("lee@example.com", first_name="Lee", last_name="Colleague")
    state.join(meeting, "Lee", user="lee@example.com")  # a forwarded link, signed in to the account: Zoom's email
    state.join(meeting, "Max", email="max@example.com")  # a guest who typed an email: only their word for it
    classroom.minutes(50)
    classroom.end_class(report=report)
    classroom.deliver_webhooks()
    classroom.after_the_end()
    assert classroom.attendees() == ["lee@example.com"]
    assert "verified_email (email verified by Zoom, no launch)" in classroom.explanations()["lee@example.com"]
    assert ("unmatched", "Max") in classroom.reviews()
    assert all(name != "Tess Teacher" for _, name in classroom.reviews())
    assert classroom.attendees() == ["lee@example.com"]  # again, from the kept evidence
