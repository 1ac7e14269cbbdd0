"""`viltbridge attendance policy|alias|export`: what an operator changes and takes away, checked before it is kept,
and exports that a spreadsheet cannot run as formulas."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Lms, b64, session_body
from viltbridge.app import attendance_admin
from viltbridge.config import Settings
from viltbridge.core.clock import SystemClock
from viltbridge.web.app import create_app


def test_policy_is_checked_before_it_is_kept_and_sessions_can_override_it(run) -> None:
    run("connection", "create", "acme", "--provider", "link")
    assert "75%" in run("attendance", "policy", "acme").stdout
    changed = run("attendance", "policy", "acme", "--set", "min_percent=80", "--set", "min_minutes=50").stdout
    assert "80%" in changed and "50 min" in changed
    wrong = run("attendance", "policy", "acme", "--set", "min_percent=180", "--set", "colour=red", ok=False)
    assert wrong.exit_code == 1 and "min_percent" in wrong.output and "colour" in wrong.output
    assert "80%" in run("attendance", "policy", "acme").stdout  # the wrong change changed nothing
    missing = run("attendance", "policy", "acme", "--session", "nope", "--set", "min_percent=50", ok=False)
    assert "no session 'nope'" in missing.output
    assert "75%" in run("attendance", "policy", "acme", "--reset").stdout


def test_aliases_are_added_listed_and_removed(run) -> None:
    run("connection", "create", "acme", "--provider", "link")
    assert "no aliases" in run("attendance", "alias", "acme").stdout
    assert "kim.home@example.net -> kim@example.com" in run(
        "attendance", "alias", "acme", " Kim.Home@Example.NET", "Kim@Example.com").stdout
    refused = run("attendance", "alias", "acme", "nonsense", "kim@example.com", ok=False)
    assert refused.exit_code == 1 and "provider email" in refused.output
    assert "no aliases" in run("attendance", "alias", "acme", "kim.home@example.net", "--remove").stdout
    assert "has no alias" in run("attendance", "alias", "acme", "kim.home@example.net", "--remove", ok=False).output


def test_exports_per_session_and_per_connection_and_date_range(run) -> None:
    created = json.loads(run("connection", "create", "acme", "--provider", "link", "--json").stdout)
    now = datetime.now(UTC).replace(microsecond=0)
    settings = Settings(_env_file=None, lms_path_prefix="/")  # type: ignore[call-arg]
    with TestClient(create_app(settings, clock=SystemClock())) as client:
        lms = Lms(client, created["username"], created["password"])
        for name, start, title in (("early", now - timedelta(days=3), "=HYPERLINK(\"http://x\")"),
                                   ("late", now - timedelta(minutes=50), "Safety basics")):
            assert lms.create_session(session_body(name, start=start, minutes=60, Title=title)).status_code == 200
        for learner in ("jane@example.com", "-bob@example.com"):  # a launch while "late" runs counts (link)
            link = lms.call("GET", f"/session/late/user/{b64(learner)}/url").json()["data"]["joinUrl"]
            followed = client.get("/l/" + link.split("/l/")[1], follow_redirects=False)
            assert followed.status_code == 302, followed.text
        assert lms.attendees("late").status_code == 200
        assert lms.attendees("early").status_code == 200
    rows = list(csv.DictReader(io.StringIO(run("attendance", "export", "--connection", "acme").stdout)))
    assert [(row["session_id"], row["email"], row["attended"]) for row in rows] == [
        ("late", "'-bob@example.com", "yes"), ("late", "jane@example.com", "yes")]
    assert "provisional" in {row["state"] for row in rows}  # the part has not ended
    one = json.loads(run("attendance", "export", "--connection", "acme", "--session", "late", "--format",
                         "json").stdout)
    assert {row["email"] for row in one} == {"-bob@example.com", "jane@example.com"}
    # Two days on: "late" ends 10 minutes from now, which is tomorrow's date in the last minutes of a UTC day.
    assert run("attendance", "export", "--from", (now + timedelta(days=2)).date().isoformat()).stdout.count(
        "\n") == 1  # only the header
    assert "name the connection" in run("attendance", "export", "--session", "late", ok=False).output
    assert "not a date" in run("attendance", "export", "--from", "last week", ok=False).output
    assert "csv or json" in run("attendance", "export", "--format", "xml", ok=False).output


@pytest.mark.pure
@given(st.text(max_size=40))
def test_no_exported_cell_can_start_a_formula(text: str) -> None:
    row = {field: text for field in attendance_admin.EXPORT_FIELDS}
    [parsed] = list(csv.DictReader(io.StringIO(attendance_admin.to_csv([row]))))
    for value in parsed.values():
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
        assert value in (text, "'" + text)  # the text itself, shown as text when it would be a formula


def test_a_multi_part_session_rolls_up_by_the_policys_parts_rule(run) -> None:
    created = json.loads(run("connection", "create", "acme", "--provider", "link", "--json").stdout)
    now = datetime.now(UTC).replace(microsecond=0)
    settings = Settings(_env_file=None, lms_path_prefix="/")  # type: ignore[call-arg]
    with TestClient(create_app(settings, clock=SystemClock())) as client:
        lms = Lms(client, created["username"], created["password"])
        for part, minutes_ago in (("p1", 50), ("p2", 40)):
            assert lms.create_session(session_body(part, start=now - timedelta(minutes=minutes_ago), minutes=60,
                                                   LoId="course-1")).status_code == 200
        for part, learner in (("p1", "jane@example.com"), ("p2", "jane@example.com"), ("p1", "bob@example.com")):
            link = lms.call("GET", f"/session/{part}/user/{b64(learner)}/url").json()["data"]["joinUrl"]
            assert client.get("/l/" + link.split("/l/")[1], follow_redirects=False).status_code == 302
        for part in ("p1", "p2"):
            assert lms.attendees(part).status_code == 200

    def rolled() -> dict[str, tuple[str, str]]:
        rows = csv.DictReader(io.StringIO(run("attendance", "export", "--by", "session").stdout))
        return {row["email"]: (row["attended"], row["explanation"]) for row in rows}

    every = rolled()
    assert every["jane@example.com"][0] == "yes" and every["bob@example.com"][0] == "no"
    explained = every["bob@example.com"][1]
    assert explained == "1 of 2 part(s) attended (p1: attended; p2: not attended); rule: every part"
    run("attendance", "policy", "acme", "--set", "parts=any")
    assert rolled()["bob@example.com"][0] == "yes"
    assert "use part or session" in run("attendance", "export", "--by", "course", ok=False).output
