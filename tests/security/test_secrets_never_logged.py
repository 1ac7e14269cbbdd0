"""No secret reaches a log line. Every kind of secret is configured (the server key, the LMS secret and a wrong guess
at it, OAuth tokens issued, each provider's client secret / refresh token / webhook secret / private key / shared
secret, console passwords, the calendar feed token, launch tokens and the provider credentials they resolve to),
real flows run against the simulators with `debug: true` on every LMS call and every logger at DEBUG, and the
captured output (messages and tracebacks) is searched for each secret, raw and in its base64 and URL forms."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, b64, session_body
from tests.providers.conftest import zoom_settings
from viltbridge.app import console_users
from viltbridge.app.console_users import ConsoleRole
from viltbridge.config import Settings
from viltbridge.providers.bbb.simulator import running_simulator as bbb_simulator
from viltbridge.providers.goto.simulator import running_simulator as goto_simulator
from viltbridge.providers.jitsi.simulator import running_simulator as jitsi_simulator
from viltbridge.providers.teams.simulator import running_simulator as teams_simulator
from viltbridge.providers.webex.simulator import running_simulator as webex_simulator
from viltbridge.providers.zoom.simulator import running_simulator as zoom_simulator
from viltbridge.web.app import create_app
from viltbridge.web.console import calendar

START = NOW + timedelta(minutes=5)
HOST = "tess@example.com"
LEARNER = "jane@example.com"
ADMIN = "ada@example.com"
ADMIN_PASSWORD = "console password that must stay secret"
WRONG_GUESS = "a-mistyped-lms-secret-is-still-secret"
SECRET_SETTINGS = re.compile(r"secret|token|private_key|password", re.IGNORECASE)
# Query parameters of provider join links that work as credentials (JaaS/Jitsi JWTs, Zoom registrant tokens,
# Webex/Zoom start tokens, BBB checksums).
CREDENTIAL_PARAMETERS = {"jwt", "tk", "zak", "checksum", "token"}

SIMULATORS: dict[str, Callable[..., Any]] = {
    "zoom": zoom_simulator, "webex": webex_simulator, "teams": teams_simulator, "goto": goto_simulator,
    "bbb": bbb_simulator, "jitsi": jitsi_simulator,
}


def seeded(kind: str, sim: Any) -> dict[str, Any]:
    """The simulator's world with the host in it; the connection settings pointing at it."""
    sim.reset(start=START)
    if kind == "zoom":
        sim.state.seed_user(HOST, first_name="Tess", last_name="Teacher")
        return zoom_settings(sim)
    if kind == "webex":
        sim.state.seed_person(HOST, first_name="Tess", last_name="Teacher")
    elif kind == "teams":
        sim.state.seed_user(HOST, "Tess Teacher")
    return dict(sim.settings())


@pytest.fixture(scope="module")
def simulators() -> Iterator[Callable[[str], Any]]:
    # All at once, here: the module's tests use every one, and a server the fixture owns must not start in a test.
    with ExitStack() as stack:
        started = {kind: stack.enter_context(running(start=START)) for kind, running in SIMULATORS.items()}
        yield started.__getitem__


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the traceback too, when there is one


@pytest.fixture
def captured() -> Iterator[Everything]:
    """Everything that reaches the root logger, with viltbridge's loggers at DEBUG (what `VILTBRIDGE_LOG_LEVEL=DEBUG`
    or a `debug: true` call writes); other libraries keep their levels as deployed (`configure_logging` leaves
    them alone), their own DEBUG output (SQL statements, socket events) being a developer's switch."""
    handler = Everything()
    root, package = logging.getLogger(), logging.getLogger("viltbridge")
    before = package.level
    root.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        package.setLevel(before)


def forms_of(secret: str) -> set[str]:
    """The secret as it could be written: raw, base64 (standard and URL-safe, padded or not), URL-encoded."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms |= {form.rstrip("=") for form in forms}
    return {form for form in forms if len(form) >= 8}


def secret_parts(value: str) -> list[str]:
    """A PEM key is searched line by line (a log might hold part of it); other values whole."""
    if "-----BEGIN" in value:
        return [line for line in value.splitlines() if line and not line.startswith("-----")]
    return [value]


def credentials_in(url: str) -> list[str]:
    return [value for key, value in parse_qsl(urlsplit(url).query + "&" + urlsplit(url).fragment)
            if key.lower() in CREDENTIAL_PARAMETERS and len(value) >= 8]


def console_sign_in(client: TestClient, password: str) -> Any:
    form = client.get("/console/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert token
    return client.post("/console/login", data={"email": ADMIN, "password": password, "login_csrf": token.group(1)})


@pytest.mark.parametrize("kind", ["zoom", "webex", "teams", "goto", "bbb", "jitsi", "link"])
def test_no_secret_reaches_a_log_line(kind: str, simulators: Callable[[str], Any], settings: Settings, db: Db,
                                      clock: Any, captured: Everything) -> None:
    provider_settings = seeded(kind, simulators(kind)) if kind != "link" else {}
    secrets: dict[str, str] = {"VILTBRIDGE_SECRET_KEY": settings.secret_key or "", "wrong LMS secret": WRONG_GUESS,
                               "console password": ADMIN_PASSWORD}
    secrets |= {f"{kind} {key}": str(value) for key, value in provider_settings.items()
                if SECRET_SETTINGS.search(key) and not key.endswith("_url") and value}
    with db.session() as s, s.begin():
        admin, _ = console_users.create(s, NOW, "test", ADMIN, [ConsoleRole.INTEGRATIONS_MANAGE.value],
                                        password=ADMIN_PASSWORD)
        admin_id = admin.id
        feed_token = calendar.feed_token(db.keyring, admin_id, admin.session_version)
    secrets["calendar feed token"] = feed_token

    with TestClient(create_app(settings, clock=clock, public_url="http://testserver"), follow_redirects=False,
                    headers={"debug": "true", "correlationId": "leak-hunt"}) as client:
        # The console: a wrong password, the right one, the connection created with its secrets in a form.
        assert console_sign_in(client, "not the password").status_code == 401
        assert console_sign_in(client, ADMIN_PASSWORD).status_code == 303
        username = f"acme-{kind}"
        if any("\n" in str(value) for value in provider_settings.values()):  # a PEM key: not a one-line form field
            password = db.create_connection(username, kind, **provider_settings)["password"]
        else:
            fields = {f"s.{key}": str(value) for key, value in provider_settings.items()}
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/connections/new").text)
            created = client.post("/console/connections/new", data={
                "name": username, "provider": kind, **fields, "csrf_token": csrf.group(1)})  # type: ignore[union-attr]
            assert created.status_code == 200, created.text
            password = re.search(r'id="new-secret">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
        secrets["LMS secret"] = password
        secrets["LMS Basic credentials"] = f"{username}:{password}"
        assert client.get(f"/console/connections/acme-{kind}").status_code == 200
        assert client.get(f"/console/ics/{admin_id}/{feed_token}.ics").status_code == 200

        # The LMS: a wrong secret, a token, then the workflow on bearer and Basic credentials.
        assert client.get("/session/s-1/attendees", auth=(username, WRONG_GUESS)).status_code == 401
        issued = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": username,
                                                   "client_secret": password})
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        secrets["OAuth access token"] = token
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.post("/instructor", json={"Email": HOST, "FirstName": "Tess", "LastName": "Teacher"},
                           headers=bearer).status_code == 200
        body = session_body("s-1", start=START, InstructorEmails=HOST)
        assert client.post("/session", json=body, headers=bearer).status_code == 200, kind
        clock.set(START - timedelta(minutes=2))
        for person in (HOST, LEARNER):
            answer = client.get(f"/session/s-1/user/{b64(person)}/url", auth=(username, password))
            assert answer.status_code == 200, answer.text
            launch = answer.json()["data"]["joinUrl"]
            secrets[f"launch token of {person}"] = launch.rsplit("/l/", 1)[1]
            followed = client.get(launch.replace("http://testserver", ""))
            assert followed.status_code in (200, 302), followed.text
            for n, credential in enumerate(credentials_in(followed.headers.get("location", ""))):
                secrets[f"{kind} join credential {n} of {person}"] = credential
        client.put("/session/s-1", json={**body, "Title": "Renamed"}, headers=bearer)
        client.get("/session/s-1/attendees", headers=bearer)
        assert client.delete("/session/s-1", headers=bearer).status_code == 200

    log_text = "\n".join(captured.lines)
    assert any("debug request" in line for line in captured.lines)
    if kind not in ("link", "jitsi"):  # the provider exchanges themselves were logged, bodies and all
        assert any(line.startswith("DEBUG viltbridge.providers.http") for line in captured.lines), captured.lines
    leaks = [f"{name} (as {form[:6]}…)" for name, value in secrets.items() if value
             for part in secret_parts(value) for form in forms_of(part) if form in log_text]
    assert not leaks, f"secrets in the log ({len(captured.lines)} lines): {leaks}"
