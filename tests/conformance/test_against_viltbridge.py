"""The conformance kit against viltbridge itself, for every provider: a real `viltbridge serve` subprocess (system
clock, SQLite, jobs in-process) and each provider's simulator in this process playing the class. Every case must
pass, and the table, JUnit XML and JSON must tell the same story."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from tests.processes import free_port, process_env, start_serve, stop
from tests.providers.conftest import zoom_settings
from viltbridge.cli import app as cli_app
from viltbridge.providers.bbb.simulator import running_simulator as bbb_simulator
from viltbridge.providers.goto.simulator import running_simulator as goto_simulator
from viltbridge.providers.jitsi.simulator import running_simulator as jitsi_simulator
from viltbridge.providers.teams.simulator import running_simulator as teams_simulator
from viltbridge.providers.webex.simulator import running_simulator as webex_simulator
from viltbridge.providers.zoom.simulator import running_simulator as zoom_simulator

pytestmark = pytest.mark.pure  # its own server and SQLite file: no test database fixture
HOST = "tess.teacher@example.com"
LEARNERS = ("ada.learner@example.com", "bo.learner@example.com", "cy.learner@example.com")


class Server:
    """`viltbridge serve` on a free port, with the environment the CLI needs to manage its connections."""

    def __init__(self, tmp: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = process_env(f"sqlite:///{tmp / 'viltbridge.db'}", Fernet.generate_key().decode(),
                               VILTBRIDGE_QUEUE_URL=f"sqlite:///{tmp / 'queue.db'}", VILTBRIDGE_PUBLIC_URL=self.url)
        self.log = tmp / "serve.log"
        self.process = start_serve(self.env, port, self.log)

    def connection(self, name: str, provider: str, settings: dict[str, Any]) -> dict[str, Any]:
        pairs = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
        result = CliRunner().invoke(cli_app, ["connection", "create", name, "--provider", provider, *pairs, "--json"],
                                    env=self.env)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("conformance"))
    yield running
    running.stop()


@contextmanager
def provider_world(provider: str, hooks: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The provider's simulator (real clock; `hooks` is where viltbridge takes its webhooks and callbacks) and
    the connection settings pointing at it; `link` has neither."""
    simulators: dict[str, Callable[..., AbstractContextManager[Any]]] = {
        "zoom": zoom_simulator, "teams": teams_simulator, "webex": webex_simulator, "goto": goto_simulator,
        "bbb": bbb_simulator, "jitsi": jitsi_simulator,
    }
    if provider == "link":
        yield None, {}
        return
    with simulators[provider](**({"webhook_url": hooks} if provider == "jitsi" else {})) as sim:
        if provider == "zoom":
            yield sim, zoom_settings(sim)
        elif provider == "bbb":
            yield sim, sim.settings(analytics_callback_url=hooks)
        else:
            yield sim, sim.settings()


def conformance(server: Server, connection: dict[str, Any], tmp: Path, *extra: str) -> tuple[Any, Path, Path]:
    junit, report = tmp / "junit.xml", tmp / "report.json"
    args = ["conformance", server.url, "--username", connection["username"], "--instructor", HOST,
            *(arg for learner in LEARNERS for arg in ("--learner", learner)),
            "--junit", str(junit), "--json", str(report), "--attendance-timeout", "20", *extra]
    result = CliRunner().invoke(cli_app, args, env={"VILTBRIDGE_CONFORMANCE_PASSWORD": connection["password"],
                                                    "COLUMNS": "200"})
    return result, junit, report


@pytest.mark.parametrize("provider", ["link", "zoom", "teams", "webex", "goto", "bbb", "jitsi"])
def test_every_case_passes_against_viltbridge(provider: str, server: Server, tmp_path: Path) -> None:
    name = f"conf-{provider}"
    with provider_world(provider, f"{server.url}/webhooks/{name}") as (sim, settings):
        connection = server.connection(name, provider, settings)
        scenario = sim.base_url if sim is not None else "clicks"
        result, junit, report = conformance(server, connection, tmp_path, "--provider-scenario", scenario,
                                            "--extras")
    assert result.exit_code == 0, f"{result.output}\n--- server log ---\n{server.log.read_text()[-3000:]}"
    outcome = json.loads(report.read_text())
    assert outcome["passed"] is True and outcome["counts"]["failed"] == outcome["counts"]["skipped"] == 0
    ids = [case["id"] for case in outcome["cases"]]
    assert "attendance.played" in ids and "hostile.deep_json" in ids and "extra.body_limit" in ids
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) == len(ids)
    assert int(suite.get("failures", "-1")) == 0 and int(suite.get("skipped", "-1")) == 0
    assert [f"{c.get('classname', '').removeprefix('conformance.')}.{c.get('name')}"
            for c in suite.iter("testcase")] == ids
    for case_id in ids:
        assert case_id in result.stdout  # the table names every case


def test_oauth_client_credentials_drive_the_kit(server: Server, tmp_path: Path) -> None:
    connection = server.connection("conf-oauth", "link", {})
    args = ["conformance", server.url, "--client-id", connection["username"], "--only", "auth,launch.learner",
            "--instructor", HOST, "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(cli_app, args, env={"VILTBRIDGE_CONFORMANCE_CLIENT_SECRET": connection["password"],
                                                    "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    cases = {case["id"]: case["outcome"] for case in json.loads((tmp_path / "r.json").read_text())["cases"]}
    assert cases == {"auth.missing": "passed", "auth.wrong_password": "passed", "auth.oauth": "passed",
                     "launch.learner": "passed"}
