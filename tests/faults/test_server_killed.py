"""`viltbridge serve` killed with SIGKILL in the middle of a burst of launches (the LMS asking for 200 learners'
links, each learner clicking theirs), then started again: every joinUrl the LMS was given still takes its learner
to class, the launch ledger holds each answered click once and whole, and every answer was a documented one."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from tests.conftest import b64, session_body
from tests.faults.conftest import World
from tests.processes import documented_statuses, free_port, process_env, start_serve, stop, wait_for

pytestmark = pytest.mark.scale_out
LEARNERS = 200
LAUNCH = "/session/{SessionId}/user/{base64EncodedEmail}/url"


@dataclass
class Launch:
    learner: int
    asked: int | None = None  # the LMS's launch call: HTTP status, None when the server vanished mid-call
    join_url: str | None = None
    clicked: int | None = None  # the learner's click on the joinUrl
    location: str | None = None
    undocumented: str | None = None


def launch_and_click(url: str, auth: tuple[str, str], learner: int, schema: dict[str, Any]) -> Launch:
    outcome = Launch(learner)
    try:
        with httpx2.Client(timeout=30, follow_redirects=False) as http:
            asked = http.get(f"{url}/session/k-1/user/{b64(f'learner{learner}@example.com')}/url", auth=auth)
            outcome.asked = asked.status_code
            if asked.status_code not in documented_statuses(schema, "GET", LAUNCH):
                outcome.undocumented = f"launch answered HTTP {asked.status_code}: {asked.text[:300]}"
                return outcome
            if asked.status_code != 200:
                return outcome
            outcome.join_url = asked.json()["data"]["joinUrl"]
            clicked = http.get(outcome.join_url, headers={"User-Agent": f"click-{learner}"})
            outcome.clicked, outcome.location = clicked.status_code, clicked.headers.get("location")
            if clicked.status_code not in documented_statuses(schema, "GET", "/l/{token}"):
                outcome.undocumented = f"click answered HTTP {clicked.status_code}: {clicked.text[:300]}"
    except httpx2.TransportError:
        pass  # the server was killed under this call: no answer, which is not a wrong answer
    return outcome


def test_a_server_killed_mid_burst_of_launches_loses_no_link_and_records_no_click_twice(world: World) -> None:
    auth = world.create_connection("acme", "link")
    env = process_env(world.database_url, world.secret_key)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_serve(env, port, world.tmp / "serve-1.log")
    try:
        schema = httpx2.get(f"{url}/openapi.json", auth=auth).json()
        starts = datetime.now(UTC) + timedelta(minutes=5)  # open for joining now
        saved = httpx2.post(f"{url}/session", json=session_body("k-1", start=starts), auth=auth)
        assert saved.status_code == 200, saved.text

        outcomes: list[Launch] = []
        done = threading.Lock()

        def one(learner: int) -> None:
            result = launch_and_click(url, auth, learner, schema)
            with done:
                outcomes.append(result)

        with ThreadPoolExecutor(max_workers=50) as pool:
            for learner in range(LEARNERS):
                pool.submit(one, learner)
            wait_for(lambda: sum(o.clicked is not None for o in list(outcomes)) >= 40, seconds=60,
                     what="the burst to get going", explain=world.logs)
            os.killpg(server.pid, signal.SIGKILL)  # mid-burst: no shutdown, no flush
            killed_at = time.monotonic()
            server.wait()
        clicked_before_kill = [o for o in outcomes if o.clicked == 302]

        server = start_serve(env, port, world.tmp / "serve-2.log")
        restarted_in = time.monotonic() - killed_at
        given = [o for o in outcomes if o.join_url]
        with httpx2.Client(timeout=30, follow_redirects=False) as http:
            again = {o.learner: http.get(o.join_url or "", headers={"User-Agent": f"again-{o.learner}"})
                     for o in given}
    finally:
        stop(server)

    assert [o.undocumented for o in outcomes if o.undocumented] == []
    still_redirecting = [n for n, answer in again.items() if answer.status_code == 302]
    assert len(still_redirecting) == len(given), {n: a.status_code for n, a in again.items() if a.status_code != 302}
    for outcome in clicked_before_kill:  # the same room after the restart
        assert again[outcome.learner].headers["location"] == outcome.location

    rows = world.query("SELECT user_agent, email, role, provider_url, identity, clicked_at FROM launches")
    clicks = [row[0] for row in rows if row[0].startswith("click-")]
    assert len(clicks) == len(set(clicks)), "a click recorded twice"
    answered = {f"click-{o.learner}" for o in clicked_before_kill}
    assert answered <= set(clicks), f"clicks sent on but not in the ledger: {sorted(answered - set(clicks))[:5]}"
    assert all(email and role and provider_url and identity is not None and clicked_at
               for _, email, role, provider_url, identity, clicked_at in rows), "a partial launch row"
    assert sorted(row[0] for row in rows if row[0].startswith("again-")) == sorted(
        f"again-{n}" for n in still_redirecting)
    cut_off = LEARNERS - len([o for o in outcomes if o.asked is not None])
    print(f"\nserver SIGKILL mid-burst: {len(outcomes)} learners, {len(given)} joinUrls handed out, "
          f"{len(clicked_before_kill)} clicks answered before the kill, {cut_off} launch calls cut off (no answer), "
          f"{len(clicks)} clicks in the ledger (0 twice), restart healthy in {restarted_in:.2f} s, "
          f"{len(still_redirecting)}/{len(given)} joinUrls still redirect (0 lost)")
