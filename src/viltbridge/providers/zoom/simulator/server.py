"""A faithful local fake of Zoom's Meetings API v2 (plus Server-to-Server OAuth and the few Users endpoints a
connector needs), for tests, demos and benchmarks.

A real HTTP server: `ZoomSimulator(...).start()` (or `with running_simulator(...) as sim:`) serves it with uvicorn
on 127.0.0.1 in a background thread; `python -m viltbridge.providers.zoom.simulator --port 8765` serves it for a
demo. Paths, field names, types and status codes follow the official Meetings OpenAPI document
(`tests/providers/zoom/test_simulator_matches_spec.py` checks every route and every response against it):
201 on create, 204 on PATCH/DELETE/status, cursor pagination with a `next_page_token` that expires after 15 minutes,
registrants, one report row per join/leave segment, guests with empty email and ids, per-plan rate limits with
real 429s, and signed webhooks.

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `reconnect`, `restart_meeting`,
`end_meeting`, `mark_report_processed`, webhook holding/reordering/duplication, the clock and injected faults. The
same calls are reachable over HTTP as `POST /_sim/{method}` with the keyword arguments as a JSON object.

Where the spec and docs/providers.md disagree the spec wins, and the code says so.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from viltbridge.providers.serving import SimulatorServer, scenario_route
from viltbridge.providers.zoom.simulator.api import API_ENDPOINTS, ApiCall, ApiEndpoint, register
from viltbridge.providers.zoom.simulator.state import LIGHT, PLANS, SimConfig, ZoomApiError, ZoomState, iso

__all__ = [
    "API_ENDPOINTS", "ApiEndpoint", "SimConfig", "ZoomApiError", "ZoomSimulator", "ZoomState",
    "build_app", "main", "running_simulator",
]

API_PREFIX = "/v2"  # the spec's server is https://api.zoom.us/v2


# ---------------------------------------------------------------------------------------------------------------
# HTTP: API dispatch, OAuth, join/start pages, scenario API


def _fault_response(state: ZoomState, status: int, category: str, retry_after: str | None) -> JSONResponse:
    headers: dict[str, str] = {}
    if status == 429:
        body = {"code": 429, "message": "You have reached the maximum per-second rate limit for this API. "
                                        "Try again later."}
        headers = {"X-RateLimit-Category": category, "X-RateLimit-Type": "QPS",
                   "X-RateLimit-Limit": str(state.limiter.plan.per_second.get(category, 0)),
                   "X-RateLimit-Remaining": "0"}
    else:
        body = {"code": status, "message": HTTPStatus(status).phrase}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return JSONResponse(body, status_code=status, headers=headers)


async def _take_fault(state: ZoomState, request: Request, category: str) -> Response | None:
    fault = state.take_fault(request.method, request.url.path)
    if fault is None:
        return None
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)  # a slow Zoom: lets clients exercise their timeouts
    if fault.status is None:
        return None
    return _fault_response(state, fault.status, category, fault.retry_after)


def _api_route(endpoint: ApiEndpoint) -> Route:
    async def handle(request: Request) -> Response:
        state: ZoomState = request.app.state.zoom
        response = await _take_fault(state, request, endpoint.category)
        if response is None:
            response = await _dispatch(state, request, endpoint)
        if state.config.record_exchanges:
            body = json.loads(bytes(response.body)) if response.body else None
            state.record({"method": endpoint.method, "route": endpoint.path, "path": request.url.path,
                          "status": response.status_code, "body": body, "headers": dict(response.headers)})
        return response

    return Route(API_PREFIX + endpoint.path, handle, methods=[endpoint.method])


async def _dispatch(state: ZoomState, request: Request, endpoint: ApiEndpoint) -> Response:
    raw = await request.body()
    headers: dict[str, str] = {}
    try:
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise ZoomApiError(400, 300, "Request Body should be a valid JSON object.") from None
        call = ApiCall(path={k: unquote(v) for k, v in request.path_params.items()},
                       query=dict(request.query_params), body=body)
        with state.lock:
            granted = state.check_token(request.headers.get("authorization")).split()
            if not any(scope in granted for scope in endpoint.scopes):
                raise ZoomApiError(400, 4700, "Invalid access token, does not contain scopes:"
                                              f"[{', '.join(endpoint.scopes)}].")
            if state.config.enforce_rate_limits:
                headers = state.limiter.charge(endpoint.category, state.clock.now())
            status, payload = endpoint.handler(state, call)
    except ZoomApiError as err:
        status, payload, headers = err.status, err.body(), err.headers
    # Webhooks caused by the call (e.g. PUT status "end") go out after the response, as Zoom's do.
    task = BackgroundTask(state.deliver_pending) if state.has_outgoing() else None
    if payload is None:
        return Response(status_code=status, headers=headers, background=task)
    return JSONResponse(payload, status_code=status, headers=headers, background=task)


def _oauth_error(reason: str, error: str) -> JSONResponse:
    # [M] Zoom's token endpoint answers {"reason", "error"}; [L] always HTTP 400.
    return JSONResponse({"reason": reason, "error": error}, status_code=400)


async def oauth_token(request: Request) -> Response:
    state: ZoomState = request.app.state.zoom
    fault = await _take_fault(state, request, LIGHT)
    if fault is not None:
        return fault
    params = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    params.update(request.query_params)  # Zoom also takes grant_type and account_id in the query string
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(credentials, validate=True).decode().partition(":")
    except ValueError:
        client_id = secret = ""
    config = state.config
    if scheme.lower() != "basic" or (client_id, secret) != (config.client_id, config.client_secret):
        return _oauth_error("Invalid client_id or client_secret", "invalid_client")
    grant = params.get("grant_type")
    if not grant:
        return _oauth_error("Missing grant type", "invalid_request")
    if grant != "account_credentials":
        return _oauth_error("Unsupported grant type", "unsupported_grant_type")
    if params.get("account_id") != config.account_id:
        return _oauth_error("Invalid account_id", "invalid_request")  # [L] wording
    with state.lock:
        token, expires_in, scope = state.issue_token()
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": scope,
                         "api_url": state.base_url})


def _page_html(status: int, title: str, text: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{text}</p>", status_code=status)


async def web_link(request: Request) -> Response:
    """The join (/j), registrant join (/w), host start (/s) and registration pages the links point at."""
    state: ZoomState = request.app.state.zoom
    kind = request.url.path.split("/")[1]
    query = request.query_params
    with state.lock:
        meeting = state.meetings.get(int(request.path_params["meetingId"]))
        visit: dict[str, Any] = {"kind": kind, "meeting_id": meeting.id if meeting else None,
                                 "at": iso(state.clock.now()), "ok": False}
        state.web_visits.append(visit)
        if meeting is None or meeting.deleted_at is not None:
            return _page_html(404, "Meeting not found", "This meeting link is not valid.")
        if kind == "s":
            entry = state.start_tokens.get(query.get("zak", ""))
            if entry is None or entry[0] != meeting.id:
                return _page_html(403, "Invalid start link", "Sign in to start this meeting.")
            if entry[1] <= state.clock.now():
                return _page_html(403, "Start link expired", "This start link has expired; get a new one.")
            visit["ok"] = True
            return _page_html(200, "Starting meeting", f"Starting {meeting.topic} as host.")
        if query.get("pwd") != meeting.encrypted_password:
            return _page_html(403, "Wrong passcode", "Enter the meeting passcode.")
        if kind == "j" and meeting.registration_enabled:
            # Zoom admits only registrants to a meeting that requires registration: the plain link leads to the
            # registration form (whatever `uname` says), and the personal link arrives by email after it.
            visit["redirected"] = "registration"
            return RedirectResponse(state.registration_url(meeting), status_code=302)
        if kind == "w":
            registrant = next((r for r in meeting.registrants.values() if r.token == query.get("tk")), None)
            if registrant is None or registrant.status != "approved":
                return _page_html(403, "Registration not valid", "This registration link is not valid.")
            visit["registrant_id"] = registrant.id
        visit["ok"] = True
        return _page_html(200, "Joining meeting", f"Joining {meeting.topic}.")


async def registration_page(request: Request) -> Response:
    """Zoom's registration form: GET shows it; POST (email, first_name, last_name) registers the person. As Zoom
    does by default now, the personal join link goes out by email only, never onto the confirmation page."""
    state: ZoomState = request.app.state.zoom
    token = request.path_params["token"]
    form = parse_qs((await request.body()).decode("utf-8", "replace")) if request.method == "POST" else {}
    with state.lock:
        meeting = next((m for m in state.meetings.values() if m.registration_token == token
                        and m.deleted_at is None and m.registration_enabled), None)
        if meeting is None:
            return _page_html(404, "Registration closed", "This meeting does not take registrations.")
        if request.method == "GET":
            return _page_html(200, "Register", f"Register for {meeting.topic}.")
        person = {key: values[0] for key, values in form.items() if values}
        try:
            registrant = register(state, meeting, person, False)
        except ZoomApiError as err:
            return _page_html(400, "Registration failed", err.message)
    return _page_html(200, "Registration approved" if registrant.status == "approved" else "Registration pending",
                      "Check your email for the link to join.")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return JSONResponse({"code": status, "message": HTTPStatus(status).phrase}, status_code=status)


class _RawApiPath:
    """Route `/v2` requests on the raw path, so an encoded `/` (%2F) stays inside its path segment as on Zoom's
    servers; handlers decode path parameters once themselves (instance UUIDs may need a second decode)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and raw.startswith(API_PREFIX.encode() + b"/"):
                scope = {**scope, "path": raw.decode("latin-1")}
        await self.app(scope, receive, send)


def build_app(state: ZoomState) -> Starlette:
    routes = [_api_route(endpoint) for endpoint in API_ENDPOINTS]
    routes += [
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route("/j/{meetingId:int}", web_link, methods=["GET"]),
        Route("/w/{meetingId:int}", web_link, methods=["GET"]),
        Route("/s/{meetingId:int}", web_link, methods=["GET"]),
        Route("/meeting/register/{token}", registration_page, methods=["GET", "POST"]),
        scenario_route("zoom", allow_get=True),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.zoom = state
    app.add_middleware(_RawApiPath)
    return app


# ---------------------------------------------------------------------------------------------------------------
# Running it


class ZoomSimulator(SimulatorServer[ZoomState, SimConfig]):
    """The simulator as a running server. `sim.state` is the world and its scenario API."""

    state_name = "zoom"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> ZoomState:
        return ZoomState(config, base_url=base_url)

    def build_app(self, state: ZoomState) -> Starlette:
        return build_app(state)

    @property
    def api_base_url(self) -> str:
        return self._server.url + API_PREFIX

    @property
    def oauth_token_url(self) -> str:
        return self._server.url + "/oauth/token"



def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[ZoomSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return ZoomSimulator.running(config, **changes)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.zoom.simulator",
                                     description="Serve a local fake of Zoom's Meetings API for demos and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--plan", choices=sorted(PLANS), default="pro")
    parser.add_argument("--user", action="append", default=[], metavar="EMAIL",
                        help="seed a licensed active user (repeatable); the first is the account owner")
    parser.add_argument("--webhook-url", help="where to POST signed webhooks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--auto-process-reports", action="store_true",
                        help="report durations are final as soon as a meeting ends")
    args = parser.parse_args(argv)
    defaults = SimConfig()
    config = SimConfig(plan=args.plan, webhook_url=args.webhook_url, seed=args.seed,
                       start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None,
                       enforce_rate_limits=not args.no_rate_limits, auto_process_reports=args.auto_process_reports)
    simulator = ZoomSimulator(config, host=args.host, port=args.port)
    state = simulator.state
    for email in args.user:
        state.seed_user(email, first_name=email.split("@")[0].capitalize(), last_name="Teacher")
    print(f"Zoom simulator on {simulator.base_url}  (plan {config.plan})")
    print(f"  API base URL     {simulator.base_url}{API_PREFIX}")
    print(f"  OAuth token URL  {simulator.base_url}/oauth/token")
    print(f"  account_id={defaults.account_id} client_id={defaults.client_id} "
          f"client_secret={defaults.client_secret}")
    print(f"  webhook secret token {defaults.webhook_secret_token}; webhooks to {args.webhook_url or '(none)'}")
    print(f"  scenario API     POST {simulator.base_url}/_sim/<method>: {', '.join(ZoomState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down cleanly
        simulator.serve_forever()
