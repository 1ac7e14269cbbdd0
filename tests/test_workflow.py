"""The whole Cornerstone workflow against a running server: real processes, real HTTP on 127.0.0.1.

Runs on SQLite and (second pass) PostgreSQL, as every database-backed test does.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest

from tests.processes import free_port
from viltbridge.app.context import CALLER_CACHE_SECONDS

VILTBRIDGE = [sys.executable, "-m", "viltbridge"]


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VILTBRIDGE_DATABASE_URL": database_url, "VILTBRIDGE_KEY_FILE": str(tmp_path / "key"),
            "VILTBRIDGE_SECRET_KEY": ""}


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([*VILTBRIDGE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # `viltbridge serve` imports the whole app: slow on a busy machine
        while True:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"server did not start:\n{output}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)


def cli(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run([*VILTBRIDGE, *args], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def b64(email: str) -> str:
    return base64.b64encode(email.encode()).decode()


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def answers_with(status: int, call: Callable[[], httpx2.Response]) -> bool:
    """Whether `call` answers `status` within the server's cache lifetime (with room for a busy machine)."""
    deadline = time.monotonic() + CALLER_CACHE_SECONDS + 20
    while True:
        if call().status_code == status:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def test_the_whole_cornerstone_workflow(server: str, env: dict[str, str]) -> None:
    created = cli(env, "connection", "create", "acme", "--provider", "link", "--json")
    assert created["base_path"] == "/"
    lms = httpx2.Client(base_url=server, auth=(created["username"], created["password"]),
                        headers={"correlationId": "wf-1"}, timeout=10)

    def ok(response: httpx2.Response) -> dict:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "Success" and body["correlationId"] == "wf-1"
        return body

    # Instructors
    ok(lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess", "LastName": "Teacher"}))
    ok(lms.put("/instructor", json={"OldEmail": "tess@example.com", "NewEmail": "tess.t@example.com",
                                    "FirstName": "Tess", "LastName": "Teacher"}))

    # A two-part session
    now = datetime.now(UTC).replace(microsecond=0)
    parts = {"part-1": now + timedelta(minutes=5), "part-2": now + timedelta(days=7)}
    for session_id, start in parts.items():
        ok(lms.post("/session", json={
            "SessionId": session_id, "CreatorEmail": "admin@example.com", "Title": "Forklift safety",
            "DateBegin": utc(start), "DateEnd": utc(start + timedelta(hours=1)),
            "TimeZone": {"UTCOffset": "(UTC-05:00) Eastern Time (US & Canada)"}, "LoId": "lo-42",
            "InstructorEmails": "tess.t@example.com",
        }))

    # Update part 1 (new title, ten minutes later); links must keep working
    early_link = ok(lms.get(f"/session/part-1/user/{b64('learner1@example.com')}/url"))["data"]["joinUrl"]
    ok(lms.put("/session/part-1", json={
        "sessionId": "part-1", "creatorEmail": "admin@example.com", "title": "Forklift safety (room change)",
        "dateBegin": utc(parts["part-1"] + timedelta(minutes=10)),
        "dateEnd": utc(parts["part-1"] + timedelta(minutes=70)), "timeZone": {"utcOffset": "-05:00"},
        "loId": "lo-42", "instructorEmails": "tess.t@example.com",
    }))

    # Launch as the instructor and two learners, following each joinUrl like a browser
    browser = httpx2.Client(follow_redirects=False, timeout=10)
    rooms = {}
    for email in ("tess.t@example.com", "learner1@example.com", "Learner2@Example.com"):
        join_url = ok(lms.get(f"/session/part-1/user/{b64(email)}/url"))["data"]["joinUrl"]
        assert join_url.startswith(f"{server}/l/")
        redirect = browser.get(join_url)
        assert redirect.status_code == 302, redirect.text
        rooms[email] = redirect.headers["location"]
    assert browser.get(early_link).status_code == 302  # handed out before the edit, still good
    assert len({location.split("#")[0] for location in rooms.values()}) == 1  # one room for everyone

    # Cancel part 2; its launches now fail with a message; cancelling again is fine
    ok(lms.delete("/session/part-2", params={"LoId": "lo-42"}))
    ok(lms.delete("/session/part-2"))
    refused = lms.get(f"/session/part-2/user/{b64('learner1@example.com')}/url")
    assert refused.status_code == 400 and "cancelled" in refused.json()["error"]["message"]

    # Attendance: the two learners (the instructor is the host, not an attendee)
    attendees = ok(lms.get("/session/part-1/attendees"))["data"]["attendees"]
    assert sorted(a["email"] for a in attendees) == ["Learner2@Example.com", "learner1@example.com"]  # as the LMS sent

    # Deactivation keeps the data but refuses every call: the CLI is another process, so the server sees the change
    # once its cached read of the connection expires (CALLER_CACHE_SECONDS)
    cli(env, "connection", "deactivate", "acme", "--json")
    assert answers_with(403, lambda: lms.get("/session/part-1/attendees"))
    cli(env, "connection", "activate", "acme", "--json")
    assert answers_with(200, lambda: lms.get("/session/part-1/attendees"))
