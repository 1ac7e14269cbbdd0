"""A PostgreSQL server that accepts connections and never answers (hung), or stops answering on the connections
already open (a partition), behind a running `viltbridge serve`: every LMS call, /healthz, a launch click and a
console page get a 503 with Retry-After in their own format within 15 s, never a 500 or a hang, and the server
answers normally again once the database does, without a restart of its own. Likewise a SQLite database another
program holds the write lock on: writes get that 503 within 15 s, reads go on."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as OrmSession

from tests.conftest import b64, session_body
from tests.faults.conftest import World
from tests.faults.door import DatabaseDoor, DatabaseFault
from tests.processes import process_env, serving, wait_for
from viltbridge.app import console_users
from viltbridge.store import migrate
from viltbridge.store.db import sync_engine

pytestmark = pytest.mark.scale_out

WITHIN_SECONDS = 15.0  # the bound every answer keeps while the database does not answer
# Short timeouts keep the test quick; test_the_default_timeouts_answer_within_the_bound runs with the defaults.
QUICK_TIMEOUTS = {"VILTBRIDGE_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
                  "VILTBRIDGE_DATABASE_STATEMENT_TIMEOUT_SECONDS": "2",
                  "VILTBRIDGE_DATABASE_POOL_TIMEOUT_SECONDS": "2"}
ADMIN, PASSWORD = "ada@example.com", "a long passphrase"


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    answers_in: str  # "envelope" (the LMS's JSON), "html" (a browser's page) or "health"
    json: dict[str, object] | None = None
    # The launch endpoint answers from its short-lived caches of the caller and the session (issue 16): asked
    # again while they hold, it needs no database and succeeds. A session it has not read yet needs the database.
    may_be_cached: bool = False


@dataclass
class Answer:
    call: Call
    status: int | None
    seconds: float
    retry_after: str | None = None
    content_type: str = ""
    text: str = ""


@dataclass
class Site:
    """A server on a database behind the door, with what its callers need: LMS credentials, a launch link and a
    signed-in console browser's cookies."""

    url: str
    auth: tuple[str, str]
    calls: list[Call]
    console_cookies: httpx2.Cookies

    def ask(self, call: Call) -> Answer:
        with httpx2.Client(base_url=self.url, timeout=WITHIN_SECONDS + 30, follow_redirects=False,
                           cookies=self.console_cookies) as http:
            started = time.monotonic()
            try:
                response = http.request(call.method, call.path, json=call.json,
                                        auth=self.auth if call.answers_in == "envelope" else None,
                                        headers={"correlationId": "stall-1"})
            except httpx2.HTTPError as exc:
                return Answer(call, None, time.monotonic() - started, text=f"{exc.__class__.__name__}: {exc}")
            return Answer(call, response.status_code, time.monotonic() - started, response.headers.get("retry-after"),
                          response.headers.get("content-type", ""), response.text)

    def ask_all(self) -> list[Answer]:
        """Every call at once, as the LMS and browsers would send them."""
        with ThreadPoolExecutor(len(self.calls)) as pool:
            return list(pool.map(self.ask, self.calls))


def unavailable_problem(answer: Answer) -> str | None:
    """Why `answer` is not a prompt 503 with Retry-After in its caller's format, or None."""
    call = answer.call
    if answer.status is None:
        return f"no answer after {answer.seconds:.1f} s: {answer.text}"
    if call.may_be_cached and answer.status == 200 and answer.seconds < WITHIN_SECONDS:
        return None
    if answer.status != 503 or not answer.retry_after:
        return f"HTTP {answer.status} (Retry-After {answer.retry_after!r}) after {answer.seconds:.1f} s: " \
               f"{answer.text[:300]}"
    if answer.seconds >= WITHIN_SECONDS:
        return f"a 503, but only after {answer.seconds:.1f} s"
    if call.answers_in == "html":
        if not answer.content_type.startswith("text/html") or "database" not in answer.text:
            return f"not a page that names the database: {answer.content_type} {answer.text[:300]}"
    elif call.answers_in == "envelope":
        try:
            envelope = json.loads(answer.text)
        except ValueError:
            return f"not the LMS's envelope: {answer.text[:300]}"
        error = envelope.get("error", {}) if isinstance(envelope, dict) else {}
        if error.get("code") != 503 or "database" not in error.get("message", ""):
            return f"not the LMS's envelope of a 503 that names the database: {answer.text[:300]}"
    elif "unavailable" not in answer.text:
        return f"a health answer that does not say the database is unavailable: {answer.text[:300]}"
    return None


def prepared_site(world: World, url: str) -> Site:
    auth = world.create_connection("acme", "link")
    now = datetime.now(UTC)
    with OrmSession(world.engine) as db, db.begin():
        console_users.create(db, now, "test", ADMIN, ["vendors-view"], password=PASSWORD)
    with httpx2.Client(base_url=url, auth=auth, timeout=30) as lms:
        assert lms.post("/session", json=session_body("now-1", start=now)).status_code == 200
        link = lms.get(f"/session/now-1/user/{b64('kim@example.com')}/url").json()["data"]["joinUrl"]
    with httpx2.Client(base_url=url, timeout=30) as browser:
        form = browser.get("/console/login").text
        token = re.search(r'name="login_csrf" value="([^"]+)"', form)
        assert token, form
        signed_in = browser.post("/console/login", data={"email": ADMIN, "password": PASSWORD,
                                                         "login_csrf": token.group(1)})
        assert signed_in.status_code == 303, signed_in.text
        cookies = browser.cookies
    calls = [Call("save a session", "POST", "/session", "envelope", session_body("now-2", start=now)),
             Call("ask for a launch URL", "GET", f"/session/now-1/user/{b64('kim@example.com')}/url", "envelope",
                  may_be_cached=True),
             Call("ask for attendance", "GET", "/session/now-1/attendees", "envelope"),
             Call("health check", "GET", "/healthz", "health"),
             Call("click a launch link", "GET", urlsplit(link).path, "html"),
             Call("open a console page", "GET", "/console/connections", "html")]
    return Site(url, auth, calls, cookies)


@pytest.fixture
def door(world: World) -> Iterator[DatabaseDoor]:
    database = make_url(world.database_url)
    door = DatabaseDoor(database.host or "127.0.0.1", database.port or 5432)
    try:
        yield door
    finally:
        door.close()


def behind(world: World, door: DatabaseDoor) -> str:
    return make_url(world.database_url).set(host="127.0.0.1", port=door.port).render_as_string(hide_password=False)


def answering_normally(site: Site) -> bool:
    """Every call answered as with the database there: no 5xx (attendance may be a 404 before anyone joined)."""
    return all(answer.status is not None and answer.status < 500 for answer in site.ask_all())


def play(site: Site, door: DatabaseDoor, fault: DatabaseFault, explain: Callable[[], str]) -> None:
    assert answering_normally(site), explain()
    hit_before = door.connections_hit
    door.set(fault)
    uncached = Call("ask for a launch URL of a session not read before", "GET",
                    f"/session/unread-{uuid.uuid4().hex[:8]}/user/{b64('kim@example.com')}/url", "envelope")
    try:
        answers = [*site.ask_all(), site.ask(uncached)]
    finally:
        door.set(DatabaseFault.NONE)
    problems = {answer.call.name: problem for answer in answers if (problem := unavailable_problem(answer))}
    assert problems == {}, f"with the database {fault.value}:\n" + "\n".join(
        f"  {name}: {problem}" for name, problem in problems.items()) + f"\n{explain()}"
    if fault is DatabaseFault.UNANSWERED:
        assert door.connections_hit > hit_before, "no connection met the fault: the server never reconnected"
    wait_for(lambda: answering_normally(site), seconds=30,
             what=f"the server to answer normally again after the database was {fault.value}", explain=explain)
    print(f"\ndatabase {fault.value}: " + ", ".join(f"{answer.call.name} {answer.status} in {answer.seconds:.1f} s"
                                                   for answer in answers))


def test_a_database_that_does_not_answer_gets_prompt_503s_and_the_server_recovers(
        world: World, door: DatabaseDoor) -> None:
    env = process_env(behind(world, door), world.secret_key, **QUICK_TIMEOUTS)
    with serving(env, world.tmp / "serve.log") as (server, url):
        site = prepared_site(world, url)
        for fault in (DatabaseFault.STALLED, DatabaseFault.UNANSWERED):
            play(site, door, fault, world.logs)
        assert server.poll() is None, f"the server died:\n{world.logs()}"


def test_the_default_timeouts_answer_within_the_bound(world: World, door: DatabaseDoor) -> None:
    env = process_env(behind(world, door), world.secret_key)
    for setting in QUICK_TIMEOUTS:
        env.pop(setting, None)
    with serving(env, world.tmp / "serve.log") as (server, url):
        site = prepared_site(world, url)
        play(site, door, DatabaseFault.STALLED, world.logs)
        assert server.poll() is None, f"the server died:\n{world.logs()}"


WRITERS = 20  # more than the SQLite pool holds (5 + 10 overflow), so some wait for a connection as well


def test_a_locked_sqlite_database_gets_prompt_503s_for_writes_while_reads_go_on(tmp_path: Path) -> None:
    database = tmp_path / "viltbridge.db"
    database_url = f"sqlite:///{database}"
    migrate.upgrade(database_url)
    engine = sync_engine(database_url)
    world = World(database_url, Fernet.generate_key().decode(), engine, tmp_path)
    try:
        auth = world.create_connection("acme", "link")
        with serving(process_env(database_url, world.secret_key), tmp_path / "serve.log") as (server, url):
            site = Site(url, auth, [], httpx2.Cookies())
            assert site.ask(Call("save", "POST", "/session", "envelope", session_body("kept"))).status == 200
            saves = [Call(f"save {n}", "POST", "/session", "envelope", session_body(f"locked-{n}"))
                     for n in range(WRITERS)]
            read = Call("ask for a launch URL", "GET", f"/session/kept/user/{b64('kim@example.com')}/url", "envelope")
            lock = sqlite3.connect(database, isolation_level=None)
            try:
                lock.execute("BEGIN IMMEDIATE")  # another program writing, and taking its time
                with ThreadPoolExecutor(WRITERS) as pool:
                    saved = pool.map(site.ask, saves)
                    reads = [site.ask(read) for _ in range(3)]
                    answers = list(saved)
            finally:
                lock.rollback()
                lock.close()
            problems = {answer.call.name: problem for answer in answers if (problem := unavailable_problem(answer))}
            assert problems == {}, "\n".join(f"  {name}: {problem}" for name, problem in problems.items())
            assert [answer.status for answer in reads] == [200] * 3, [answer.text for answer in reads]
            wait_for(lambda: site.ask(saves[0]).status == 200, seconds=30, what="saves to succeed after the lock",
                     explain=world.logs)
            assert server.poll() is None, f"the server died:\n{world.logs()}"
            print(f"\nSQLite locked: {WRITERS} saves answered 503 in "
                  f"{min(a.seconds for a in answers):.1f}-{max(a.seconds for a in answers):.1f} s, reads in "
                  f"{max(a.seconds for a in reads):.2f} s at most")
    finally:
        engine.dispose()
