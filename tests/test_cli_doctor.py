"""`viltbridge doctor [CONNECTION]`: one line per check, ok / warning / failure with what to fix; exit 1 on a failure,
`--json` for machines. Run as an operator runs it, against the Zoom simulator over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms
from tests.providers.conftest import zoom_settings, zoom_simulator  # noqa: F401 - the simulator fixture
from viltbridge.config import Settings
from viltbridge.providers.zoom.simulator import ZoomSimulator

TESS = "tess@example.com"


@pytest.fixture
def zoom(client: TestClient, db: Db, settings: Settings, zoom_simulator: ZoomSimulator,  # noqa: F811
         run: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoomSimulator]:
    """A `zoom` connection `acme-zoom` on the simulator with Tess, a Zoom user, as its instructor; the CLI runs with
    the server's key and may call the simulator on loopback."""
    zoom_simulator.reset(start=NOW)
    zoom_simulator.state.seed_user(TESS, first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    lms = Lms(client, created["username"], created["password"])
    added = lms.call("POST", f"{settings.prefix}/instructor",  # the CLI's environment mounts the contract there
                     json={"Email": TESS, "FirstName": "Tess", "LastName": "Teacher"})
    assert added.status_code == 200, added.text
    monkeypatch.setenv("VILTBRIDGE_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK", "true")
    yield zoom_simulator
    zoom_simulator.state.clear_faults()


def _checks(result: Any) -> dict[str, dict[str, str]]:
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "checks"}
    assert report["ok"] is (result.exit_code == 0)
    for line in report["checks"]:
        assert set(line) == {"check", "status", "detail", "fix"}
        assert line["status"] in ("ok", "warning", "failure")
        assert bool(line["fix"]) is (line["status"] != "ok")  # every problem says how to fix it
    return {line["check"]: line for line in report["checks"]}


def test_a_healthy_setup_is_ok_on_every_line(run, zoom: ZoomSimulator) -> None:
    checks = _checks(run("doctor", "--json"))
    assert {name: line["status"] for name, line in checks.items() if line["status"] != "ok"} == {}
    assert {"secret key", "public URL", "trusted proxies", "database", "job queue", "clock", "acme-zoom: active",
            "acme-zoom: provider credentials", "acme-zoom: webhook secret", "acme-zoom: host pool",
            "clock (providers)"} == set(checks)
    assert "latest migration" in checks["database"]["detail"]
    assert "GET /users/me answered" in checks["acme-zoom: provider credentials"]["detail"]
    assert "1 active instructor" in checks["acme-zoom: host pool"]["detail"]
    assert "provider of acme-zoom agree to the second" in checks["clock (providers)"]["detail"]  # Zoom's Date
    table = run("doctor")
    assert "acme-zoom: provider credentials" in table.stdout and "0 failure(s)" in table.stdout


def test_a_wrong_provider_secret_fails_naming_the_connection_and_the_fix(run, db: Db, zoom: ZoomSimulator) -> None:
    db.create_connection("wrong-zoom", "zoom", **zoom_settings(zoom, client_secret="not-the-apps-secret-at-all"))
    result = run("doctor", "wrong-zoom", "--json", ok=False)
    assert result.exit_code == 1
    checks = _checks(result)
    assert all(name.startswith("wrong-zoom: ") for name in checks)  # only the named connection
    credentials = checks["wrong-zoom: provider credentials"]
    assert credentials["status"] == "failure"
    assert "zoom" in credentials["detail"].lower() and "not-the-apps-secret" not in json.dumps(checks)
    assert "viltbridge connection set wrong-zoom" in credentials["fix"]
    table = run("doctor", "wrong-zoom", ok=False)
    assert "FAILURE" in table.stdout and "wrong-zoom" in table.stdout
    ghost = _checks(run("doctor", "ghost", "--json", ok=False))
    assert ghost["connection ghost"]["detail"] == "no connection named 'ghost'"


def test_a_provider_that_does_not_answer_fails_in_time(run, db: Db, zoom: ZoomSimulator) -> None:
    zoom.state.inject_fault(delay=30.0, count=5, path="/users")
    started = time.monotonic()
    result = run("doctor", "acme-zoom", "--json", "--timeout", "1", ok=False)
    assert time.monotonic() - started < 10
    credentials = _checks(result)["acme-zoom: provider credentials"]
    assert credentials["status"] == "failure" and "did not answer within 1 s" in credentials["detail"]
    # A server that refuses connections: retried and logged (on stderr, so --json stays one JSON object), then a
    # failure pointing at the network rather than the credentials.
    db.create_connection("down-bbb", "bbb", server_url="http://127.0.0.1:1/bigbluebutton/",
                         shared_secret="a-shared-secret-of-some-length")
    down = _checks(run("doctor", "down-bbb", "--json", ok=False))["down-bbb: provider credentials"]
    assert down["status"] == "failure" and "could not connect" in down["detail"] and "network" in down["fix"]


def test_a_database_behind_the_migrations_says_run_migrate(run, database_url: str) -> None:
    from alembic import command

    from viltbridge.store.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "-1")
    result = run("doctor", "--json", ok=False)
    database = _checks(result)["database"]
    assert database["status"] == "failure" and "viltbridge migrate" in database["fix"]
    assert "not the latest" in database["detail"]


def test_keys_that_do_not_load_fail_and_a_loose_key_file_warns(run, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run("connection", "create", "acme")  # writes the key file
    key_file = tmp_path / "cli.key"
    key_file.chmod(0o644)
    loose = run("doctor", "--json")  # a warning alone: exit 0
    assert _checks(loose)["secret key"]["status"] == "warning"
    assert f"chmod 600 {key_file}" in _checks(loose)["secret key"]["fix"]
    monkeypatch.setenv("VILTBRIDGE_SECRET_KEY", "not-a-fernet-key")
    broken = run("doctor", "--json", ok=False)
    key = _checks(broken)["secret key"]
    assert key["status"] == "failure" and "not a Fernet key" in key["detail"] and "keygen" in key["fix"]
    assert "not-a-fernet-key" not in broken.stdout  # a secret is never printed
    monkeypatch.setenv("VILTBRIDGE_SECRET_KEY", run("keygen").stdout.strip())  # a key, but not the one used
    other = _checks(run("doctor", "--json", ok=False))
    assert other["secret key"]["status"] == "ok"
    assert other["acme: settings"]["status"] == "failure" and "cannot be decrypted" in other["acme: settings"]["detail"]


def test_an_unreachable_redis_fails_and_a_reachable_one_is_ok(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VILTBRIDGE_QUEUE_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("VILTBRIDGE_RATE_LIMIT_URL", "redis://127.0.0.1:6379/15")
    result = run("doctor", "--json", ok=False)
    checks = _checks(result)
    assert checks["job queue"]["status"] == "failure"
    assert "127.0.0.1:1" in checks["job queue"]["detail"] and "VILTBRIDGE_QUEUE_URL" in checks["job queue"]["fix"]
    assert checks["rate-limit Redis"]["status"] == "ok"
