"""PostgreSQL restarting under a running `viltbridge serve` while the LMS saves sessions and asks for launch links:
every call gets an answer the API documents (a 503 with Retry-After while the database is away, never a 500 or a
hang), the server recovers without a restart of its own, and every session the LMS was told was saved exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from tests.conftest import b64, service_unavailable, session_body
from tests.faults.conftest import World
from tests.processes import documented_statuses, process_env, serving, wait_for

pytestmark = pytest.mark.scale_out
CALLERS = 6
TOMORROW = datetime.now(UTC) + timedelta(days=1)


def postgresql_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


def restart_postgresql() -> None:
    """The machine's only PostgreSQL: restarted (as root), and always left running."""
    [version] = sorted(os.listdir("/etc/postgresql"))[-1:]
    try:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                       timeout=120, capture_output=True)
    finally:
        if not postgresql_ready():
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False,
                           timeout=120, capture_output=True)
        wait_for(postgresql_ready, seconds=60, what="PostgreSQL to accept connections again")


@dataclass
class Answer:
    operation: str  # "POST /session", "GET /session/{SessionId}/user/{base64EncodedEmail}/url"
    session_id: str
    started: float
    ended: float
    status: int | None  # None: no answer at all (timeout, connection dropped)
    retry_after: str | None = None
    body: Any = None
    failure: str = ""


def documented(answer: Answer, schema: dict[str, Any]) -> str | None:
    """Why this answer is not one the LMS may get, or None."""
    method, path = answer.operation.split(" ", 1)
    if answer.status is None:
        return f"no answer: {answer.failure}"
    if answer.status not in documented_statuses(schema, method, path):
        return f"HTTP {answer.status} is not documented for {answer.operation}"
    if not isinstance(answer.body, dict) or not answer.body.get("status"):
        return f"not in the contract's envelope: {answer.body!r}"
    if answer.status >= 400 and answer.body.get("error", {}).get("code") != answer.status:
        return f"error.code differs from HTTP {answer.status}: {answer.body!r}"
    if answer.status >= 500 and (answer.status != 503 or not answer.retry_after):
        return f"a server error that does not say when to retry: HTTP {answer.status} {answer.body!r}"
    return None


def play_the_lms(url: str, auth: tuple[str, str], caller: int, stop: threading.Event, answers: list[Answer]) -> None:
    """Saves a session, then asks for a learner's launch link in it; again and again until told to stop."""
    with httpx2.Client(base_url=url, auth=auth, timeout=20) as http:
        n = 0
        while not stop.is_set():
            session_id = f"pg-{caller}-{n}"
            n += 1
            for operation, method, path, body in (
                    ("POST /session", "POST", "/session", session_body(session_id, start=TOMORROW)),
                    ("GET /session/{SessionId}/user/{base64EncodedEmail}/url", "GET",
                     f"/session/{session_id}/user/{b64('kim@example.com')}/url", None)):
                started = time.monotonic()
                try:
                    response = http.request(method, path, json=body)
                except httpx2.HTTPError as exc:
                    answers.append(Answer(operation, session_id, started, time.monotonic(), None,
                                          failure=f"{exc.__class__.__name__}: {exc}"))
                    break
                answers.append(Answer(operation, session_id, started, time.monotonic(), response.status_code,
                                      response.headers.get("retry-after"), _json(response)))
                if response.status_code != 200:
                    break  # not saved: no launch to ask for


def _json(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def test_postgresql_restarting_mid_request_gives_documented_answers_and_loses_no_saved_session(world: World) -> None:
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        service_unavailable("restarting PostgreSQL needs root and pg_ctlcluster (Debian's postgresql-common)")
    auth = world.create_connection("acme", "link")
    env = process_env(world.database_url, world.secret_key)
    with serving(env, world.tmp / "serve.log") as (server, url):
        schema = httpx2.get(f"{url}/openapi.json", auth=auth).json()
        answers: list[Answer] = []
        stop = threading.Event()
        callers = [threading.Thread(target=play_the_lms, args=(url, auth, n, stop, answers), daemon=True)
                   for n in range(CALLERS)]
        for caller in callers:
            caller.start()
        try:
            wait_for(lambda: len(answers) >= 20, what="the LMS's calls to get going", explain=world.logs)
            restart_began = time.monotonic()
            restart_postgresql()
            restarted = time.monotonic()

            def saved_since_restart() -> bool:
                return any(a.started > restarted and a.status == 200 for a in list(answers))

            wait_for(saved_since_restart, seconds=60, what="the server to save again after the restart",
                     explain=world.logs)
            recovered = min(a.ended for a in list(answers) if a.started > restarted and a.status == 200)
            # Every caller answered once more after the recovery: what they were told is checked below.
            wait_for(lambda: sum(a.started > recovered for a in list(answers)) >= CALLERS, seconds=60,
                     what="more calls after the recovery", explain=world.logs)
        finally:
            stop.set()
            for caller in callers:
                caller.join(timeout=30)
            if not postgresql_ready():
                restart_postgresql()
        assert server.poll() is None, f"the server died:\n{world.logs()}"
        assert httpx2.get(f"{url}/healthz").status_code == 200  # recovered without a restart of its own

    wrong = [(a.operation, a.session_id, reason) for a in answers if (reason := documented(a, schema))]
    assert wrong == [], "\n".join(sorted({f"{op}: {reason[:300]}" for op, _, reason in wrong}))
    in_flight = [a for a in answers if a.started < restarted and a.ended > restart_began]
    assert in_flight, "no LMS call was in flight while PostgreSQL restarted"
    told_saved = {a.session_id for a in answers if a.operation == "POST /session" and a.status == 200}
    stored = {row[0] for row in world.query("SELECT external_id FROM sessions")}
    assert told_saved <= stored, f"saved for the LMS but not in the database: {sorted(told_saved - stored)}"
    by_status: dict[str, int] = {}
    for answer in answers:
        key = str(answer.status)
        by_status[key] = by_status.get(key, 0) + 1
    print(f"\nPostgreSQL restart: {len(answers)} LMS calls, answers by status {by_status}, "
          f"{len(in_flight)} in flight during the restart, restart took {restarted - restart_began:.2f} s, "
          f"first save after it {recovered - restarted:.2f} s later; {len(told_saved)} sessions saved, 0 lost")
