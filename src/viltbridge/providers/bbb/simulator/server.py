"""A faithful local fake of BigBlueButton's HTTP API (docs/providers.md §4), for tests, demos and benchmarks.

A real HTTP server: `with running_simulator(start=T0) as sim:` serves it on 127.0.0.1 in a background thread;
`python -m viltbridge.providers.bbb.simulator --port 8767` serves it for a demo. API calls live under
`/bigbluebutton/api/{call}`, are checked against the shared secret (SHA-1/256/384/512 by checksum length), and
answer HTTP 200 with XML whose `returncode` says SUCCESS or FAILED. `join` redirects (302) to a client page and
records who joined with which `userID`. Ending a meeting posts the learning-analytics callback (JWT HS512).

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `end_meeting`, `advance`; over HTTP as
`POST /_sim/{method}` with the keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from viltbridge.providers.bbb.simulator.state import BbbFailure, BbbState, SimConfig
from viltbridge.providers.serving import SimulatorServer, scenario_route

__all__ = ["BbbSimulator", "BbbState", "SimConfig", "build_app", "main", "running_simulator"]

API_PREFIX = "/bigbluebutton/api"
CALLS = frozenset({"create", "join", "end", "getMeetingInfo", "isMeetingRunning", "getMeetings"})


def _xml_value(tag: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"<{tag}>{''.join(_xml_value(k, v) for k, v in value.items())}</{tag}>"
    if isinstance(value, list):
        item = {"attendees": "attendee", "meetings": "meeting"}.get(tag, "item")
        return f"<{tag}>{''.join(_xml_value(item, v) for v in value)}</{tag}>"
    text = "true" if value is True else "false" if value is False else str(value)
    return f"<{tag}>{escape(text)}</{tag}>"


def xml_response(fields: dict[str, Any], returncode: str = "SUCCESS") -> Response:
    """BBB's answer: always HTTP 200, success or not (§4.1)."""
    body = _xml_value("response", {"returncode": returncode, **fields})
    return Response(body, media_type="text/xml")


def _failure(err: BbbFailure) -> Response:
    return xml_response({"messageKey": err.key, "message": err.message}, returncode="FAILED")


async def api(request: Request) -> Response:
    state: BbbState = request.app.state.bbb
    call = request.path_params["call"]
    if call not in CALLS:
        return _failure(BbbFailure("unsupportedRequest", "This request is not supported."))
    # POST sends the same parameters as a form body, and the checksum is over that body (§4.1).
    query = (await request.body()).decode() if request.method == "POST" else request.url.query
    try:
        state.verify(call, query)
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.pop("checksum", None)
        return await _answer(state, call, params)
    except BbbFailure as err:
        return _failure(err)


async def _answer(state: BbbState, call: str, params: dict[str, str]) -> Response:
    if call == "create":
        with state.lock:
            meeting, existed = state.create(params)
            fields = {"meetingID": meeting.meeting_id, "internalMeetingID": meeting.internal_id,
                      "parentMeetingID": "bbb-none", "createTime": int(meeting.create_time.timestamp() * 1000),
                      "attendeePW": meeting.params["attendeePW"], "moderatorPW": meeting.params["moderatorPW"],
                      "hasUserJoined": bool(meeting.attendees), "duration": params.get("duration", "0"),
                      "hasBeenForciblyEnded": False}
        if existed:
            fields |= {"messageKey": "duplicateWarning",
                       "message": "This conference was already in existence and may currently be in progress."}
        return xml_response(fields)
    if call == "join":
        return _join(state, params)
    if call == "end":
        with state.lock:
            state.meeting_for(params)  # notFound before anything is sent
        # In a worker thread: the callback may go to a server that calls this one back.
        await run_in_threadpool(state.end_meeting, params["meetingID"])
        return xml_response({"messageKey": "sentEndMeetingRequest",
                             "message": "A request to end the meeting was sent."})
    with state.lock:
        if call == "getMeetings":
            return xml_response({"meetings": [state.info(m) for m in state.meetings.values()]})
        if call == "isMeetingRunning":
            found = state.meetings.get(params.get("meetingID", ""))
            return xml_response({"running": bool(found and state.info(found)["running"])})
        return xml_response(state.info(state.meeting_for(params)))


def _join(state: BbbState, params: dict[str, str]) -> Response:
    if not params.get("fullName"):
        raise BbbFailure("missingParamFullName", "You must specify a name for the attendee who will be joining.")
    with state.lock:
        role = state.role_for(params)
    user_id = params.get("userID") or f"w_{secrets.token_hex(6)}"  # [L] BBB's internal ids look like this
    joined = state.join(params.get("meetingID", ""), user_id, params["fullName"], role)
    token = secrets.token_urlsafe(12)
    if params.get("redirect") == "false":
        return xml_response({"messageKey": "successfullyJoined", "message": "You have joined successfully.",
                             "meeting_id": joined["internal_meeting_id"], "user_id": user_id,
                             "auth_token": token, "session_token": token,
                             "url": f"{state.base_url}/html5client/join?sessionToken={token}"})
    return RedirectResponse(f"{state.base_url}/html5client/join?sessionToken={token}", status_code=302)


async def client_page(request: Request) -> Response:
    return HTMLResponse("<h1>BigBlueButton (simulated) client</h1>")


async def version(request: Request) -> Response:
    return xml_response({"version": "2.0", "apiVersion": "2.0", "bbbVersion": "3.0-sim"})


def build_app(state: BbbState) -> Starlette:
    app = Starlette(routes=[
        Route(API_PREFIX, version, methods=["GET"]),
        Route(API_PREFIX + "/", version, methods=["GET"]),
        Route(API_PREFIX + "/{call}", api, methods=["GET", "POST"]),
        Route("/html5client/join", client_page, methods=["GET"]),
        scenario_route("bbb", refusals=(BbbFailure,)),
    ])
    app.state.bbb = state
    return app


class BbbSimulator(SimulatorServer[BbbState, SimConfig]):
    """The simulator as a running server. `sim.state` is the world and its scenario API."""

    state_name = "bbb"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> BbbState:
        return BbbState(config, base_url=base_url)

    def build_app(self, state: BbbState) -> Starlette:
        return build_app(state)

    @property
    def server_url(self) -> str:
        return self.base_url + "/bigbluebutton/"


    def settings(self, **extra: Any) -> dict[str, Any]:
        """Connection settings for viltbridge's BBB provider pointed at this simulator."""
        return {"server_url": self.server_url, "shared_secret": self.config.shared_secret, **extra}


def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[BbbSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return BbbSimulator.running(config, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.bbb.simulator",
                                     description="Serve a local fake of the BigBlueButton API for demos and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767, help="0 picks a free port")
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    args = parser.parse_args(argv)
    config = SimConfig(start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None)
    simulator = BbbSimulator(config, host=args.host, port=args.port)
    print(f"BigBlueButton simulator: server_url {simulator.server_url} shared_secret {config.shared_secret}")
    print(f"  scenario API POST {simulator.base_url}/_sim/<method>: {', '.join(BbbState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()
