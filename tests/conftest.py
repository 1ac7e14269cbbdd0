"""Shared fixtures: a fresh database per test (SQLite file, or PostgreSQL when VILTBRIDGE_TEST_DATABASE=postgresql),
an app with an injectable clock, a connection with known credentials, and an LMS-side client.

Tests that need PostgreSQL skip when it is unreachable, except with VILTBRIDGE_REQUIRE_SERVICES=1 (CI), where
an unreachable service fails the run instead.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as OrmSession

from tests.processes import wait_for
from viltbridge.app import connections
from viltbridge.config import Settings
from viltbridge.core.clock import FixedClock
from viltbridge.security.crypto import load_keyring
from viltbridge.store import migrate
from viltbridge.store.db import sync_engine
from viltbridge.web.app import create_app

REQUIRE_SERVICES = os.environ.get("VILTBRIDGE_REQUIRE_SERVICES") == "1"
BACKEND = os.environ.get("VILTBRIDGE_TEST_DATABASE", "sqlite")
POSTGRES_URL = os.environ.get("VILTBRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
# The simulators listen on 127.0.0.1, which the provider URL guard refuses unless told otherwise; set for this
# process (CLI runs, provider clients built outside an app) and every server or worker it starts.
# tests/security passes its own policies.
os.environ.setdefault("VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK", "1")


def service_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (VILTBRIDGE_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)



_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip: a skipped test there means a service was missing and its tests never ran."""
    if REQUIRE_SERVICES and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REQUIRE_SERVICES and _skipped:
        terminalreporter.write_line(
            f"FAILED: VILTBRIDGE_REQUIRE_SERVICES=1 but {len(_skipped)} test(s) skipped: {', '.join(_skipped[:10])}",
            red=True,
        )


def _admin_engine() -> sa.Engine:
    return sa.create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
                            isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a PG restart


@pytest.fixture(autouse=True)
def _provider_outages_and_quotas_end_with_their_test() -> Iterator[None]:
    """Circuit breakers and rate-limit buckets are per process and per provider account; a test that plays an
    outage, or spends a simulator host's daily quota, must not leave the next test (same simulator account) facing
    an open breaker or an empty bucket."""
    yield
    from viltbridge.providers.http import _BREAKERS, share_limits_through

    for breaker in list(_BREAKERS.values()):
        breaker.close()
    share_limits_through(None)  # fresh in-memory buckets


@pytest.fixture(autouse=True)
def _logging_ends_as_it_began() -> Iterator[None]:
    """`configure_logging` (as `viltbridge serve` calls it) puts its handler, writing to this test's stderr, on the
    root logger and routes Python's warnings there: every test leaves the root and package loggers as it found them."""
    package, root = logging.getLogger("viltbridge"), logging.getLogger()
    saved = (package.handlers[:], package.level, package.propagate, root.handlers[:], root.level)
    yield
    package.handlers[:], package.level, package.propagate, root.handlers[:], root.level = saved
    logging.captureWarnings(False)


# Pools that are not a test's to stop: the provider URL guard's DNS resolver lives as long as the process, and
# AnyIO's worker threads (`run_in_threadpool`, `to_thread`) end by themselves after 10 s idle.
PROCESS_WIDE_THREADS = ("url-guard-dns", "AnyIO worker thread")
THREADS_END_WITHIN_SECONDS = 30.0  # a stopped thread may take a moment to finish, more on a busy machine
_threads_of_shared_fixtures: set[threading.Thread] = set()


class _SharedFixtureThreads:
    """Threads a module- or session-scoped fixture starts (a simulator shared by many tests) outlive each test by
    design and end with that fixture; remember them, so the check below does not count them against a test.
    A plugin of its own: pytest asks only root-level plugins about session-scoped fixtures, not this conftest."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
        before = set(threading.enumerate())
        try:
            return (yield)
        finally:
            if fixturedef.scope != "function":
                _threads_of_shared_fixtures.update(set(threading.enumerate()) - before)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_SharedFixtureThreads(), "viltbridge-shared-fixture-threads")


@pytest.fixture(autouse=True)
def _threads_end_with_their_test() -> Iterator[None]:
    """A server, consumer or pool a test (or its function-scoped fixtures) starts is stopped by its teardown: a
    forgotten uvicorn thread keeps its port, its event loop ticking and its app's database open for every later
    test, which slows a loaded machine further and hides which test left it."""
    before = set(threading.enumerate())
    yield

    def left_running() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate()
                if thread not in before and thread not in _threads_of_shared_fixtures
                and not thread.name.startswith(PROCESS_WIDE_THREADS)]

    def explain() -> str:
        running = ", ".join(f"{thread.name} ({getattr(thread, '_target', None)!r})" for thread in left_running())
        return (f"still running: {running}\nStop what the test starts in its teardown (a fixture's code after "
                "`yield`, or a `with` block); a pool that outlives every test belongs in PROCESS_WIDE_THREADS.")

    wait_for(lambda: not left_running(), seconds=THREADS_END_WITHIN_SECONDS,
             what="the threads this test started to end", explain=explain)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is copied from (CREATE DATABASE … TEMPLATE)."""
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        service_unavailable(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.__class__.__name__}")
    name = f"vb_tmpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if BACKEND != "postgresql":
        url = f"sqlite:///{tmp_path / 'viltbridge.db'}"
        migrate.upgrade(url)
        yield url
        return
    yield from fresh_postgres_database(request.getfixturevalue("postgres_template"))


def fresh_postgres_database(template: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (copied from the template), dropped afterwards."""
    name = f"vb_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key=Fernet.generate_key().decode(), key_file=tmp_path / "key",
                    provider_allow_loopback=True, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Any:
    return create_app(settings, clock=clock, public_url="http://testserver")


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


class Db:
    """Direct database access for assertions ("the database is unchanged") and setup."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = sync_engine(settings.database_url)
        self.keyring = load_keyring(settings.secret_key, settings.key_file)

    def session(self) -> OrmSession:
        return OrmSession(self.engine)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table except timestamps of reads; compare before/after to prove nothing changed."""
        tables = ("connections", "instructors", "sessions", "launches")
        with self.engine.connect() as conn:
            return {t: [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))] for t in tables}

    def create_connection(self, name: str = "acme", provider: str = "link", **pairs: str) -> dict[str, str]:
        with self.session() as db, db.begin():
            created = connections.create(db, self.keyring, name, provider, dict(pairs))
            return {"name": name, "username": created.row.username, "password": created.password}


@pytest.fixture
def db(settings: Settings) -> Iterator[Db]:
    database = Db(settings)
    yield database
    database.engine.dispose()


def b64(email: str) -> str:
    return base64.b64encode(email.encode()).decode()


def session_body(session_id: str = "sess-1", *, start: datetime | None = None, minutes: int = 60,
                 **overrides: Any) -> dict[str, Any]:
    begin = start or NOW + timedelta(hours=1)
    body: dict[str, Any] = {
        "SessionId": session_id,
        "CreatorEmail": "admin@example.com",
        "Title": "Safety basics",
        "Description": "Part of onboarding",
        "DateBegin": begin.strftime("%Y-%m-%dT%H:%M:%S"),
        "DateEnd": (begin + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S"),
        "TimeZone": {"UTCOffset": "-05:00"},
    }
    body.update(overrides)
    return body


class Lms:
    """Plays Cornerstone against the app: authenticated calls with a correlation id."""

    def __init__(self, client: TestClient, username: str, password: str) -> None:
        self.client = client
        self.auth = (username, password)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"correlationId": "corr-123", **kwargs.pop("headers", {})}
        return self.client.request(method, path, auth=self.auth, headers=headers, **kwargs)

    def create_session(self, body: dict[str, Any]) -> Any:
        return self.call("POST", "/session", json=body)

    def update_session(self, session_id: str, body: dict[str, Any]) -> Any:
        return self.call("PUT", f"/session/{session_id}", json=body)

    def cancel_session(self, session_id: str) -> Any:
        return self.call("DELETE", f"/session/{session_id}")

    def launch(self, session_id: str, email: str) -> Any:
        return self.call("GET", f"/session/{session_id}/user/{b64(email)}/url")

    def attendees(self, session_id: str) -> Any:
        return self.call("GET", f"/session/{session_id}/attendees")

    def add_instructor(self, email: str, first: str = "Ann", last: str = "Smith") -> Any:
        return self.call("POST", "/instructor", json={"Email": email, "FirstName": first, "LastName": last})


@pytest.fixture
def connection(db: Db) -> dict[str, str]:
    return db.create_connection()


@pytest.fixture
def lms(client: TestClient, connection: dict[str, str]) -> Lms:
    return Lms(client, connection["username"], connection["password"])


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app served by uvicorn on a free 127.0.0.1 port in a background thread (real HTTP, own event loop)."""
    from viltbridge.providers.serving import BackgroundServer
    from viltbridge.web.http_protocol import ENVELOPE_HTTP_PROTOCOL

    server = BackgroundServer(app, lifespan=True, http=ENVELOPE_HTTP_PROTOCOL)  # as `viltbridge serve` does
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs the `viltbridge` CLI as an operator would, on the test database; `ok=False` lets it fail."""
    from typer.testing import CliRunner

    from viltbridge.cli import app as cli_app

    monkeypatch.setenv("VILTBRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("VILTBRIDGE_KEY_FILE", str(tmp_path / "cli.key"))
    monkeypatch.setenv("VILTBRIDGE_QUEUE_URL", f"sqlite:///{tmp_path / 'queue.db'}")
    monkeypatch.setenv("VILTBRIDGE_PUBLIC_URL", "https://vilt.example.org")
    monkeypatch.setenv("VILTBRIDGE_LMS_PATH_PREFIX", "/cornerstone")
    monkeypatch.delenv("VILTBRIDGE_SECRET_KEY", raising=False)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(cli_app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke
