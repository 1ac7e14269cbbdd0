"""A faithful local fake of the Webex Meetings REST API (plus the token endpoint and the People lookup a connector
needs), for tests, demos and benchmarks.

A real HTTP server: `WebexSimulator(...).start()` (or `with running_simulator(...) as sim:`) serves it with uvicorn
on 127.0.0.1 in a background thread; `python -m viltbridge.providers.webex.simulator --port 8766` serves it for a
demo. Paths, field names and status codes follow the official Webex Meetings OpenAPI document
(`tests/providers/webex/test_simulator_matches_spec.py` checks every route and every response against it): 200 on
create, meeting series with `{seriesId}_I_{n}` instances, ended instances listed ~15 minutes after their end,
participants with one device entry per join, `Link: <...>; rel="next"` pagination, personal links from
`POST /meetings/join` (302 unless `joinDirectly: false`), Webex's error body with a tracking id, 429 with
`Retry-After`, and webhooks signed with HMAC-SHA1 in `X-Spark-Signature`.

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `end_meeting`, the clock, token expiry,
injected faults (error answers and slow ones) and webhook deliveries held back, then released repeated or out of
order; over HTTP as `POST /_sim/{method}` with the keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from viltbridge.providers.serving import SimulatorServer, scenario_route
from viltbridge.providers.webex.simulator.api import API_ENDPOINTS, ApiCall, ApiEndpoint
from viltbridge.providers.webex.simulator.state import SITE, SimConfig, WebexApiError, WebexState

__all__ = ["API_ENDPOINTS", "SimConfig", "WebexSimulator", "WebexState", "build_app", "main", "running_simulator"]

API_PREFIX = "/v1"  # Webex's base URL is https://webexapis.com/v1


def _error(state: WebexState, err: WebexApiError) -> JSONResponse:
    tracking = state.tracking_id()
    return JSONResponse(err.body(tracking), status_code=err.status, headers={"trackingid": tracking, **err.headers})


def _api_route(endpoint: ApiEndpoint) -> Route:
    async def handle(request: Request) -> Response:
        state: WebexState = request.app.state.webex
        response = await _dispatch(state, request, endpoint)
        if state.config.record_exchanges:
            body = json.loads(bytes(response.body)) if response.body else None
            state.record({"method": endpoint.method, "route": endpoint.path, "path": request.url.path,
                          "status": response.status_code, "body": body, "headers": dict(response.headers)})
        return response

    return Route(API_PREFIX + endpoint.path, handle, methods=[endpoint.method])


async def _dispatch(state: WebexState, request: Request, endpoint: ApiEndpoint) -> Response:
    raw = await request.body()
    try:
        fault = state.take_fault(request.url.path, request.method)
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)  # a slow Webex; the call still takes effect unless a status is given
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            raise WebexApiError(fault.status, "Injected failure.", headers=headers)
        try:
            body: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise WebexApiError(400, "The input parameters contain invalid items.",
                                "The request body is not valid JSON.") from None
        call = ApiCall(path=dict(request.path_params), query=dict(request.query_params), body=body,
                       url=str(request.url.replace(query="")), headers=dict(request.headers))
        with state.lock:
            token = state.check_token(request.headers.get("authorization"))
            state.charge(token)
            status, payload, headers = endpoint.handler(state, call)
    except WebexApiError as err:
        return _error(state, err)
    headers = {**headers, "trackingid": state.tracking_id()}
    if payload is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(payload, status_code=status, headers=headers)


async def access_token(request: Request) -> Response:
    """`POST /v1/access_token` with `grant_type=refresh_token` (form fields, §3.1). [L] errors answer 400 with
    Webex's error body; the exact wording of Webex's token errors is not documented."""
    state: WebexState = request.app.state.webex
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    config = state.config
    fault = state.take_fault(request.url.path, request.method)
    if fault is not None and fault.delay > 0:
        await asyncio.sleep(fault.delay)
    with state.lock:
        if fault is not None and fault.status is not None:
            return _error(state, WebexApiError(fault.status, "Injected failure.",
                                               headers={"Retry-After": fault.retry_after} if fault.retry_after
                                               else {}))
        if (form.get("client_id"), form.get("client_secret")) != (config.client_id, config.client_secret):
            return _error(state, WebexApiError(401, "Invalid client_id or client_secret."))
        if form.get("grant_type") != "refresh_token":
            return _error(state, WebexApiError(400, "Unsupported grant_type."))
        if form.get("refresh_token") not in state.refresh_tokens:
            return _error(state, WebexApiError(400, "Invalid refresh_token: expired or revoked."))
        return JSONResponse(state.issue_token(form["refresh_token"]))


async def link_page(request: Request) -> Response:
    """Where personal join/start links lead: a page that says whether the link is still valid."""
    state: WebexState = request.app.state.webex
    with state.lock:
        entry = state.links.get(request.path_params["token"])
        visit = {"kind": request.path_params["kind"], "ok": False, "email": entry["email"] if entry else None}
        state.link_visits.append(visit)
        if entry is None or entry["kind"] != request.path_params["kind"]:
            return HTMLResponse("<h1>Invalid link</h1>", status_code=404)
        if entry["expires"] <= state.clock.now():
            return HTMLResponse("<h1>This link has expired</h1>", status_code=403)
        visit["ok"] = True
        return HTMLResponse(f"<h1>Joining as {entry['display_name']}</h1>")


def build_app(state: WebexState) -> Starlette:
    # /meetings/join before /meetings/{meetingId}: Starlette takes the first route whose path and method match.
    routes = [_api_route(endpoint) for endpoint in sorted(API_ENDPOINTS, key=lambda e: "{" in e.path)]
    routes += [
        Route(API_PREFIX + "/access_token", access_token, methods=["POST"]),
        Route("/webex/{kind}/{token}", link_page, methods=["GET"]),
        scenario_route("webex", refusals=(WebexApiError,)),
    ]
    app = Starlette(routes=routes)
    app.state.webex = state
    return app


class WebexSimulator(SimulatorServer[WebexState, SimConfig]):
    """The simulator as a running server. `sim.state` is the world and its scenario API."""

    state_name = "webex"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> WebexState:
        return WebexState(config, base_url=base_url)

    def build_app(self, state: WebexState) -> Starlette:
        return build_app(state)

    @property
    def api_base_url(self) -> str:
        return self._server.url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self._server.url + API_PREFIX + "/access_token"


    def settings(self, **extra: Any) -> dict[str, Any]:
        """Connection settings for viltbridge's Webex provider pointed at this simulator."""
        config = self.config
        return {"client_id": config.client_id, "client_secret": config.client_secret,
                "refresh_token": config.refresh_token, "webhook_secret": config.webhook_secret,
                "api_base_url": self.api_base_url, "token_url": self.token_url, "site": SITE, **extra}


def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[WebexSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return WebexSimulator.running(config, **changes)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.webex.simulator",
                                     description="Serve a local fake of the Webex Meetings API for demos and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--user", action="append", default=[], metavar="EMAIL",
                        help="seed a licensed host (repeatable)")
    parser.add_argument("--webhook-url", help="where to POST signed webhooks")
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    args = parser.parse_args(argv)
    config = SimConfig(webhook_url=args.webhook_url,
                       start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None)
    simulator = WebexSimulator(config, host=args.host, port=args.port)
    state = simulator.state
    for email in args.user:
        state.seed_person(email, first_name=email.split("@")[0].capitalize(), last_name="Teacher")
    print(f"Webex simulator on {simulator.base_url}")
    print(f"  api_base_url {simulator.base_url}{API_PREFIX}   token_url {simulator.base_url}{API_PREFIX}/access_token")
    print(f"  client_id={config.client_id} client_secret={config.client_secret} "
          f"refresh_token={config.refresh_token} webhook_secret={config.webhook_secret}")
    print(f"  scenario API POST {simulator.base_url}/_sim/<method>: {', '.join(WebexState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()
