"""A local fake of the Microsoft Graph endpoints a Teams connector uses (plus Entra's token endpoint), for tests,
demos and benchmarks.

A real HTTP server: `TeamsSimulator(...).start()` (or `with running_simulator(...) as sim:`) serves it with uvicorn
on 127.0.0.1 in a background thread; `python -m viltbridge.providers.teams.simulator --port 8766` serves it for a
demo. It follows docs/providers.md §2: client-credentials tokens at `/{tenant}/oauth2/v2.0/token`, users,
onlineMeetings (201 create, 200 PATCH with the body, 204 delete, createOrGet), the application-access-policy 403,
attendance reports (one per run, the 50 most recent) and records (one per person with several intervals,
`@odata.nextLink` paging), calendar events with a Teams meeting (create with `transactionId`, PATCH, cancel) and
the `JoinWebUrl` filter that finds their meeting, OData shapes, seven-digit fractional timestamps, 429s with
`Retry-After`, and scripted faults (`inject_fault`: 5xx with Graph's error body, slow answers).

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `end_meeting`, `throttle`, ... The same
calls are reachable over HTTP as `POST /_sim/{method}` with the keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from viltbridge.providers.serving import SimulatorServer, scenario_route
from viltbridge.providers.teams.simulator.api import API_ENDPOINTS, ApiCall, ApiEndpoint
from viltbridge.providers.teams.simulator.state import GraphApiError, GraphState, SimConfig, fault_error

__all__ = ["GraphApiError", "GraphState", "SimConfig", "TeamsSimulator", "build_app", "main", "running_simulator"]

API_PREFIX = "/v1.0"


# ---------------------------------------------------------------------------------------------------------------
# Graph API


def _error(state: GraphState, err: GraphApiError) -> JSONResponse:
    return JSONResponse(err.body(state.now()), status_code=err.status, headers=err.headers)


def _api_route(endpoint: ApiEndpoint) -> Route:
    async def handle(request: Request) -> Response:
        state: GraphState = request.app.state.graph
        state.requests.append((endpoint.method, request.url.path))
        raw = await request.body()  # received in full first: a slow Graph still acts on what it was sent
        query = request.url.query
        fault = state.take_fault(endpoint.method, request.url.path + (f"?{query}" if query else ""))
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)  # a slow Graph: lets clients exercise their timeouts
            if fault.status is not None:
                return _error(state, fault_error(fault))
        retry_after = state.take_throttle()
        if retry_after is not None:
            return _error(state, GraphApiError(429, "TooManyRequests", "Too many requests, please retry later.",
                                               {"Retry-After": retry_after}))
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return _error(state, GraphApiError(400, "BadRequest", "Unable to read JSON request payload."))
        call = ApiCall(path={k: unquote(v) for k, v in request.path_params.items()},
                       query=dict(request.query_params), body=body, url_path=request.url.path)
        try:
            with state.lock:
                state.check_token(request.headers.get("authorization"))
                status, payload = endpoint.handler(state, call)
        except GraphApiError as err:
            return _error(state, err)
        if payload is None:
            return Response(status_code=status)
        return JSONResponse(payload, status_code=status)

    return Route(API_PREFIX + endpoint.path, handle, methods=[endpoint.method])


# ---------------------------------------------------------------------------------------------------------------
# Entra ID token endpoint


def _token_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    # [M] Entra's error body; the AADSTS codes are the documented ones for each case.
    return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {description}",
                         "error_codes": [code], "timestamp": "2026-01-01 00:00:00Z",
                         "trace_id": "00000000-0000-0000-0000-000000000000",
                         "correlation_id": "00000000-0000-0000-0000-000000000000"}, status_code=status)


async def token(request: Request) -> Response:
    state: GraphState = request.app.state.graph
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    config = state.config
    if request.path_params["tenant"] != config.tenant_id:
        return _token_error(400, "invalid_request", 90002, f"Tenant '{request.path_params['tenant']}' not found.")
    if form.get("grant_type") != "client_credentials":
        return _token_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    if form.get("client_id") != config.client_id:
        return _token_error(400, "unauthorized_client", 700016,
                            f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
    if form.get("client_secret") != config.client_secret:
        return _token_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
    if not form.get("scope", "").endswith("/.default"):
        return _token_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")  # [L]
    access_token, expires_in = state.issue_token()
    return JSONResponse({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                         "access_token": access_token})


# ---------------------------------------------------------------------------------------------------------------
# Join page and scenario API


async def join_page(request: Request) -> Response:
    """Where a join link leads: [L] a stand-in for Teams' web launcher."""
    state: GraphState = request.app.state.graph
    path = unquote(request.url.path).lower()
    found = any(path.endswith(f"/{meeting.thread_id.lower()}/0") for meeting in state.meetings.values())
    if not found:
        return HTMLResponse("<h1>This meeting has ended or does not exist</h1>", status_code=404)
    return HTMLResponse("<h1>Microsoft Teams meeting (simulated)</h1><p>Join on the web or in the app.</p>")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    state: GraphState = request.app.state.graph
    return _error(state, GraphApiError(status, "UnknownError" if status == 404 else "BadRequest",
                                       "Resource not found for the segment." if status == 404
                                       else "Method not allowed."))


class _RawApiPath:
    """Route `/v1.0` requests on the raw path, so an encoded `/` (%2F) in a meeting id stays inside its segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and raw.startswith(API_PREFIX.encode() + b"/"):
                scope = {**scope, "path": raw.decode("latin-1").split("?")[0]}
        await self.app(scope, receive, send)


def build_app(state: GraphState) -> Starlette:
    routes = [_api_route(endpoint) for endpoint in API_ENDPOINTS]
    routes += [
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/l/meetup-join/{rest:path}", join_page, methods=["GET"]),
        scenario_route("graph", allow_get=True),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.graph = state
    app.add_middleware(_RawApiPath)
    return app


# ---------------------------------------------------------------------------------------------------------------
# Running it


class TeamsSimulator(SimulatorServer[GraphState, SimConfig]):
    """The simulator as a running server. `sim.state` is the tenant and its scenario API."""

    state_name = "graph"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> GraphState:
        return GraphState(config, base_url=base_url)

    def build_app(self, state: GraphState) -> Starlette:
        return build_app(state)

    @property
    def graph_base_url(self) -> str:
        return self._server.url + API_PREFIX


    def settings(self, **extra: Any) -> dict[str, Any]:
        """Connection settings for `TeamsSettings` pointing at this simulator."""
        config = self.config
        return {"tenant_id": config.tenant_id, "client_id": config.client_id, "client_secret": config.client_secret,
                "authority_url": self.base_url, "graph_base_url": self.graph_base_url, **extra}


def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[TeamsSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return TeamsSimulator.running(config, **changes)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.teams.simulator",
                                     description="Serve a local fake of Microsoft Graph's Teams meeting API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--user", action="append", default=[], metavar="UPN",
                        help="seed a user with the access policy granted (repeatable)")
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    args = parser.parse_args(argv)
    config = SimConfig(start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None)
    simulator = TeamsSimulator(config, host=args.host, port=args.port)
    state = simulator.state
    for upn in args.user:
        state.seed_user(upn)
    print(f"Teams (Graph) simulator on {simulator.base_url}")
    print(f"  settings: tenant_id={config.tenant_id} client_id={config.client_id} "
          f"client_secret={config.client_secret} authority_url={simulator.base_url} "
          f"graph_base_url={simulator.base_url}{API_PREFIX}")
    print(f"  scenario API POST {simulator.base_url}/_sim/<method>: {', '.join(GraphState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()
