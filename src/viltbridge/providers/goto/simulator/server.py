"""A faithful local fake of GoTo Training's REST API (G2T REST v1) and GoTo's OAuth token endpoint, for tests,
demos and benchmarks.

A real HTTP server: `GotoSimulator(...).start()` (or `with running_simulator(...) as sim:`) serves it with uvicorn
on 127.0.0.1 in a background thread; `python -m viltbridge.providers.goto.simulator --port 8767` serves it for a
demo. Paths, field names and status codes follow GoTo's GoToTraining v1 OpenAPI document (docs/providers.md §5):
create answers 201 with the trainingKey as a bare JSON string, renames and deletes answer 204, rescheduling answers
200 with who was notified, registration answers 201 (409 for an email already registered), the host start link
comes from `GET /trainings/{trainingKey}/start`, reports list completed sessions some minutes after their end, with
one `inSessionTimes` entry per join and no-shows last with `timeInSession: 0`. Errors carry GoTo's bodies
(`{"int_err_code","msg"}` or `{"errorCode","description","incident"}`); more than 10 calls a second answer 429
without Retry-After. The token endpoint checks HTTP Basic client credentials and the refresh token, answers
60-minute tokens, and can rotate refresh tokens.

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `end_session`, the clock, token expiry and
revocation, injected faults (error answers and slow ones); over HTTP as `POST /_sim/{method}` with the keyword
arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from viltbridge.providers.goto.simulator.api import ADMIN_ENDPOINTS, API_ENDPOINTS, ApiCall, ApiEndpoint
from viltbridge.providers.goto.simulator.state import GotoApiError, GotoState, SimConfig
from viltbridge.providers.serving import SimulatorServer, scenario_route

__all__ = ["API_ENDPOINTS", "GotoSimulator", "GotoState", "SimConfig", "build_app", "main", "running_simulator"]

API_PREFIX = "/G2T/rest"  # GoTo Training's base URL is https://api.getgo.com/G2T/rest
ADMIN_PREFIX = "/admin/rest/v1"  # GoTo's Admin API: https://api.getgo.com/admin/rest/v1
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path (https://authentication.logmeininc.com/oauth/token)


def _error(state: GotoState, err: GotoApiError) -> JSONResponse:
    return JSONResponse(err.body(state.incident()), status_code=err.status, headers=err.headers)


def _api_route(endpoint: ApiEndpoint, prefix: str = API_PREFIX) -> Route:
    async def handle(request: Request) -> Response:
        state: GotoState = request.app.state.goto
        response = await _dispatch(state, request, endpoint)
        if state.config.record_exchanges:
            body = json.loads(bytes(response.body)) if response.body else None
            state.record({"method": endpoint.method, "route": endpoint.path, "path": request.url.path,
                          "status": response.status_code, "body": body})
        return response

    return Route(prefix + endpoint.path, handle, methods=[endpoint.method])


async def _dispatch(state: GotoState, request: Request, endpoint: ApiEndpoint) -> Response:
    raw = await request.body()
    try:
        fault = state.take_fault(request.url.path, request.method)
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)  # a slow GoTo; the call still takes effect unless a status is given
        if fault is not None and fault.status is not None:
            raise GotoApiError(fault.status, "InjectedFailure", "Injected failure.", described=True)
        try:
            body: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise GotoApiError(400, "InvalidRequest", "The request body is not valid JSON.") from None
        call = ApiCall(path=dict(request.path_params), query=dict(request.query_params), body=body,
                       headers=dict(request.headers))
        with state.lock:
            state.check_token(request.headers.get("authorization"))
            state.charge()
            status, payload = endpoint.handler(state, call)
    except GotoApiError as err:
        return _error(state, err)
    if payload is None:
        return Response(status_code=status)
    return JSONResponse(payload, status_code=status)


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def token(request: Request) -> Response:
    """`POST /oauth/token`: HTTP Basic client credentials, form `grant_type=refresh_token&refresh_token=…` (§5.1).
    Errors are OAuth's `{"error", "error_description"}` [M]."""
    state: GotoState = request.app.state.goto
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    config = state.config
    fault = state.take_fault(request.url.path, request.method)
    if fault is not None and fault.delay > 0:
        await asyncio.sleep(fault.delay)
    with state.lock:
        if fault is not None and fault.status is not None:
            return _oauth_error(fault.status, "server_error", "Injected failure.")
        if _basic(request.headers.get("authorization")) != (config.client_id, config.client_secret):
            return _oauth_error(401, "invalid_client", "Bad client credentials")
        grant = form.get("grant_type")
        if grant != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        if form.get("refresh_token") not in state.refresh_tokens:
            return _oauth_error(400, "invalid_grant", "Invalid refresh token")
        return JSONResponse(state.issue_token(form["refresh_token"]))


async def registration_page(request: Request) -> Response:
    """Where the training's registration URL leads (GoTo's web registration form)."""
    state: GotoState = request.app.state.goto
    with state.lock:
        training = state.trainings.get(request.path_params["trainingKey"])
        state.link_visits.append({"kind": "registration", "training": request.path_params["trainingKey"]})
        if training is None or training.deleted:
            return HTMLResponse("<h1>Training Not Found</h1>", status_code=404)
        if training.disable_web_registration:
            return HTMLResponse("<h1>Registration is closed</h1>", status_code=403)
        return HTMLResponse(f"<h1>Register for {training.name}</h1>")


async def join_page(request: Request) -> Response:
    """Where a registrant's personal joinUrl leads."""
    state: GotoState = request.app.state.goto
    with state.lock:
        training = state.trainings.get(request.path_params["trainingKey"])
        registrant = next((r for r in training.registrants.values()
                           if r.join_token == request.path_params["token"]), None) if training else None
        visit: dict[str, Any] = {"kind": "join", "email": registrant.email if registrant else None, "ok": False}
        state.link_visits.append(visit)
        if training is None or training.deleted or registrant is None:
            return HTMLResponse("<h1>Training Not Found</h1>", status_code=404)
        visit["ok"] = True
        return HTMLResponse(f"<h1>Joining {training.name} as {registrant.given_name} {registrant.surname}</h1>")


async def start_page(request: Request) -> Response:
    state: GotoState = request.app.state.goto
    with state.lock:
        key = state.host_links.get(request.path_params["token"])
        visit = {"kind": "start", "training": key, "ok": False}
        state.link_visits.append(visit)
        training = state.trainings.get(key or "")
        if training is None or training.deleted or key != request.path_params["trainingKey"]:
            return HTMLResponse("<h1>Training Not Found</h1>", status_code=404)
        visit["ok"] = True
        return HTMLResponse(f"<h1>Starting {training.name}</h1>")


def build_app(state: GotoState) -> Starlette:
    routes = [_api_route(endpoint) for endpoint in API_ENDPOINTS]
    routes += [_api_route(endpoint, ADMIN_PREFIX) for endpoint in ADMIN_ENDPOINTS]
    routes += [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route("/r/{trainingKey}", registration_page, methods=["GET"]),
        Route("/join/training/{trainingKey}/{token}", join_page, methods=["GET"]),
        Route("/start/{trainingKey}/{token}", start_page, methods=["GET"]),
        scenario_route("goto", refusals=(GotoApiError,)),
    ]
    app = Starlette(routes=routes)
    app.state.goto = state
    return app


class GotoSimulator(SimulatorServer[GotoState, SimConfig]):
    """The simulator as a running server. `sim.state` is the world and its scenario API."""

    state_name = "goto"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> GotoState:
        return GotoState(config, base_url=base_url)

    def build_app(self, state: GotoState) -> Starlette:
        return build_app(state)

    @property
    def api_base_url(self) -> str:
        return self._server.url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self._server.url + TOKEN_PATH

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Connection settings for viltbridge's GoTo provider pointed at this simulator."""
        config = self.config
        return {"client_id": config.client_id, "client_secret": config.client_secret,
                "refresh_token": config.refresh_token, "organizer_key": config.organizer_key,
                "account_key": config.account_key, "api_base_url": self.api_base_url, "token_url": self.token_url,
                "admin_api_url": self._server.url + ADMIN_PREFIX,
                "registration_url": self.base_url + "/r/{trainingKey}", **extra}


def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[GotoSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return GotoSimulator.running(config, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.goto.simulator",
                                     description="Serve a local fake of GoTo Training's API for demos and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767, help="0 picks a free port")
    parser.add_argument("--organizer", default=SimConfig.organizer_email, help="the organizer's email")
    parser.add_argument("--co-organizer", action="append", default=[], metavar="EMAIL",
                        help="seed another organizer on the account (repeatable)")
    parser.add_argument("--rotate-refresh-tokens", action="store_true")
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    args = parser.parse_args(argv)
    config = SimConfig(organizer_email=args.organizer, rotate_refresh_tokens=args.rotate_refresh_tokens,
                       start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None)
    simulator = GotoSimulator(config, host=args.host, port=args.port)
    for email in args.co_organizer:
        simulator.state.seed_organizer(email)
    settings = simulator.settings()
    print(f"GoTo Training simulator on {simulator.base_url}")
    print(f"  api_base_url {settings['api_base_url']}   token_url {settings['token_url']}")
    print(f"  client_id={config.client_id} client_secret={config.client_secret} "
          f"refresh_token={config.refresh_token} organizer_key={config.organizer_key} "
          f"account_key={config.account_key}")
    print(f"  admin_api_url {settings['admin_api_url']}")
    print(f"  registration_url {settings['registration_url']}")
    print(f"  scenario API POST {simulator.base_url}/_sim/<method>: {', '.join(GotoState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()
