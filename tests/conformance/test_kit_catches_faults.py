"""The kit must be able to fail: against a small, deliberately wrong connector the broken cases fail with a reason
a developer can act on, the right ones still pass, and the exit code is 1. Also: what --only/--skip select."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from viltbridge.cli import app as cli_app
from viltbridge.providers.serving import BackgroundServer

pytestmark = pytest.mark.pure
USER, PASSWORD = "lms", "a-long-enough-secret"


def _envelope(request: Request, status: int = 200, *, echo: bool = True, **extra: Any) -> JSONResponse:
    cid = request.headers.get("correlationId") if echo else uuid.uuid4().hex
    body = {"status": "Success" if status == 200 else "ValidationError", "correlationId": cid,
            "timestamp": "2026-03-02T14:00:00.000+00:00", **extra}
    if status != 200:
        body["error"] = {"code": status, "message": "Refused."}
    return JSONResponse(body, status_code=status)


def wrong_connector() -> Starlette:
    """Right about sessions and cancellations; wrong about the rest, one way per route."""
    sessions: set[str] = set()

    async def authenticated(request: Request) -> bool:
        import base64

        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return request.headers.get("authorization") == expected

    async def session(request: Request) -> Response:
        if not await authenticated(request):
            return _envelope(request, 401)
        body = json.loads(await request.body())  # deep JSON: RecursionError, an unhandled 500
        sessions.add(str(body.get("SessionId") or request.path_params.get("sid")))
        return _envelope(request)

    async def cancel(request: Request) -> Response:
        sessions.discard(request.path_params["sid"])
        return _envelope(request)

    async def instructor(request: Request) -> Response:
        camel = "email" in json.loads(await request.body())
        return _envelope(request, echo=not camel)  # its camelCase path forgets to echo correlationId

    async def launch(request: Request) -> Response:
        if request.path_params["sid"] not in sessions:
            return Response("Internal error\x00 in lookup", status_code=500)  # 500 (and a NUL) instead of 404
        return _envelope(request, data={"joinUrl": f"{request.base_url}join/{request.path_params['sid']}"})

    async def attendees(request: Request) -> Response:
        if request.path_params["sid"] not in sessions:
            return JSONResponse({"message": "not found"}, status_code=404)  # not an envelope
        return _envelope(request, data={"attendees": []})

    async def join(request: Request) -> Response:
        return RedirectResponse("http://127.0.0.1:9/room", status_code=302)

    return Starlette(routes=[
        Route("/session", session, methods=["POST"]),
        Route("/session/{sid}", session, methods=["PUT"]),
        Route("/session/{sid}", cancel, methods=["DELETE"]),
        Route("/instructor", instructor, methods=["POST", "PUT"]),
        Route("/session/{sid}/user/{email:path}/url", launch),
        Route("/session/{sid}/attendees", attendees),
        Route("/join/{sid}", join),
    ])


@pytest.fixture(scope="module")
def connector() -> Iterator[str]:
    server = BackgroundServer(wrong_connector())
    server.start()
    yield server.url
    server.stop()


def kit(*args: str) -> Any:
    return CliRunner().invoke(cli_app, ["conformance", *args], env={"COLUMNS": "200"})


def test_broken_cases_fail_with_their_reason_and_exit_code_1(connector: str, tmp_path: Path) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    only = ("session.create,cancel.unknown,instructor.add_camel_case,launch.unknown_session,"
            "attendance.unknown_session,hostile.deep_json,attendance.played")
    result = kit(connector, "--username", USER, "--password", PASSWORD, "--junit", str(junit), "--json",
                 str(report), "--only", only)
    assert result.exit_code == 1, result.output
    cases = {case["id"]: case for case in json.loads(report.read_text())["cases"]}
    outcome = {case_id: case["outcome"] for case_id, case in cases.items()}
    assert outcome == {"session.create": "passed", "cancel.unknown": "passed", "instructor.add_camel_case": "failed",
                       "launch.unknown_session": "failed", "attendance.unknown_session": "failed",
                       "hostile.deep_json": "failed", "attendance.played": "skipped"}
    reason = {case_id: case["reason"] for case_id, case in cases.items()}
    assert "echoed in the body" in reason["instructor.add_camel_case"]
    assert "expected HTTP 404" in reason["launch.unknown_session"] and "-> 500" in reason["launch.unknown_session"]
    assert "an error envelope" in reason["attendance.unknown_session"]
    assert "deeply nested JSON" in reason["hostile.deep_json"] and "-> 500" in reason["hostile.deep_json"]
    assert "needs --provider-scenario" in reason["attendance.played"]
    for case_id in ("launch.unknown_session", "hostile.deep_json"):
        assert f"FAILED {case_id}:" in result.stdout  # each failure spelled out under the table
    suite = ET.parse(junit).getroot().find("testsuite")  # parses although a reason quotes a NUL
    assert suite is not None and suite.get("failures") == "4" and suite.get("tests") == "7"
    assert suite.get("skipped") == "1"
    failed = {f"{c.get('classname', '').removeprefix('conformance.')}.{c.get('name')}"
              for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {case_id for case_id, value in outcome.items() if value == "failed"}


def test_an_unreachable_simulator_is_a_reason_not_a_crash(connector: str) -> None:
    result = kit(connector, "--username", USER, "--password", PASSWORD, "--only", "attendance.played",
                 "--provider-scenario", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "FAILED attendance.played: ScenarioFailed: the simulator at http://127.0.0.1:9 did not answer" \
        in result.stdout


def test_wrong_credentials_are_reported_per_case_not_as_a_crash(connector: str) -> None:
    result = kit(connector, "--username", USER, "--password", "wrong", "--only", "session.create")
    assert result.exit_code == 1
    assert "FAILED session.create:" in result.stdout and "-> 401" in result.stdout


def listed(*args: str) -> list[str]:
    result = kit("http://127.0.0.1:9", "--list", *args)
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def test_only_and_skip_select_by_id_and_prefix() -> None:
    everything = listed()
    assert "session.create" in everything and "hostile.deep_json" in everything
    assert not any(case_id.startswith("extra.") for case_id in everything)  # viltbridge extras are opt-in
    assert any(case_id.startswith("extra.") for case_id in listed("--extras"))
    sessions = listed("--only", "session", "--skip", "session.multi_part")
    assert sessions and all(case_id.startswith("session.") for case_id in sessions)
    assert "session.multi_part" not in sessions and "session.create" in sessions
    assert listed("--only", "launch.host,extra.body_limit") == ["launch.host", "extra.body_limit"]
    assert "hostile.deep_json" not in listed("--skip", "hostile")
    # cases needing an option that was not given are left out, unless named
    assert "attendance.played" not in everything and "auth.oauth" not in everything
    assert "attendance.played" in listed("--provider-scenario", "clicks")
    assert "auth.oauth" in listed("--client-id", "c", "--client-secret", "s")
    assert listed("--only", "attendance.played") == ["attendance.played"]


def test_a_pattern_that_matches_nothing_is_refused() -> None:
    result = kit("http://127.0.0.1:9", "--only", "sesion", "--username", USER, "--password", PASSWORD)
    assert result.exit_code == 1
    assert "no case matches sesion" in result.output


def test_listing_needs_no_connector_but_a_run_does() -> None:
    listing = kit("--list")
    assert listing.exit_code == 0 and "session.create" in listing.output
    run = kit("--username", USER, "--password", PASSWORD)
    assert run.exit_code == 1 and "give the connector's base URL" in run.output
