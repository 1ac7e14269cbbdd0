"""A faithful local fake of Jitsi as viltbridge meets it (docs/providers.md §6): JaaS at `/{AppID}/{room}?jwt=…` or a
self-hosted server at `/{room}?jwt=…`, for tests, demos and benchmarks.

A real HTTP server: `with running_simulator(start=T0) as sim:` serves it on 127.0.0.1 in a background thread;
`python -m viltbridge.providers.jitsi.simulator --port 8768` serves it for a demo. Opening a meeting link checks the
token as the service does and answers 401/403/404 with the reason, or 200 and the person is in the room (which
posts the signed webhooks). There is no meeting API to serve: JaaS has none.

The scenario API scripts what people do: `sim.state.join(...)`, `leave`, `destroy_room`, `advance`,
`flush_webhooks`; over HTTP as `POST /_sim/{method}` with the keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import html
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from viltbridge.providers.jitsi.simulator.state import JitsiState, SimConfig, TokenRefused
from viltbridge.providers.serving import SimulatorServer, scenario_route

__all__ = ["JitsiSimulator", "JitsiState", "SimConfig", "build_app", "main", "running_simulator"]


def _page(status: int, title: str, detail: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
                        f"<p>{html.escape(detail)}</p>", status_code=status)


async def meeting_page(request: Request) -> Response:
    """The meeting: the token is checked, then the person is in (as if the web client connected)."""
    state: JitsiState = request.app.state.jitsi
    try:
        joined = await run_in_threadpool(state.join_with_link, request.url.path,
                                         request.query_params.get("jwt", ""))
    except TokenRefused as refused:
        title = {401: "Authentication failed", 403: "Not allowed", 404: "Not found"}.get(refused.status, "Refused")
        return _page(refused.status, title, refused.reason)
    return _page(200, f"Jitsi (simulated): {joined['room']}", f"You are in the meeting as {joined['jid']}.")


def build_app(state: JitsiState) -> Starlette:
    app = Starlette(routes=[
        scenario_route("jitsi", refusals=(TokenRefused,)),
        Route("/{app_id}/{room}", meeting_page, methods=["GET"]),
        Route("/{room}", meeting_page, methods=["GET"]),
    ])
    app.state.jitsi = state
    return app


class JitsiSimulator(SimulatorServer[JitsiState, SimConfig]):
    """The simulator as a running server. `sim.state` is the world and its scenario API."""

    state_name = "jitsi"
    config_class = SimConfig

    def new_state(self, config: SimConfig | None, base_url: str) -> JitsiState:
        return JitsiState(config, base_url=base_url)

    def build_app(self, state: JitsiState) -> Starlette:
        return build_app(state)

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Connection settings for viltbridge's Jitsi provider pointed at this simulator."""
        config = self.config
        if config.deployment == "jaas":
            base = {"deployment": "jaas", "app_id": config.app_id, "key_id": config.key_id,
                    "private_key": config.private_key_pem, "webhook_secret": config.webhook_secret}
        else:
            base = {"deployment": "self_hosted", "app_id": config.app_id, "app_secret": config.app_secret,
                    "domain": config.domain}
            if config.webhook_url is not None:  # an event module posting signed events is installed
                base["webhook_secret"] = config.webhook_secret
        return {**base, "base_url": self.base_url, **extra}


def running_simulator(config: SimConfig | None = None,
                      **changes: Any) -> contextlib.AbstractContextManager[JitsiSimulator]:
    """`with running_simulator(start=T0) as sim:` — SimConfig fields as keywords."""
    return JitsiSimulator.running(config, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viltbridge.providers.jitsi.simulator",
                                     description="Serve a local fake of JaaS / self-hosted Jitsi for demos and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8768, help="0 picks a free port")
    parser.add_argument("--deployment", choices=("jaas", "self_hosted"), default="jaas")
    parser.add_argument("--webhook-url", help="post signed events here, e.g. http://127.0.0.1:8000/webhooks/acme")
    parser.add_argument("--start", help="freeze the clock at this ISO time (default: follow the real time)")
    args = parser.parse_args(argv)
    config = SimConfig(deployment=args.deployment, webhook_url=args.webhook_url,
                       start=datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None)
    simulator = JitsiSimulator(config, host=args.host, port=args.port)
    settings = {k: v for k, v in simulator.settings().items() if k not in ("private_key", "app_secret")}
    print(f"Jitsi simulator ({args.deployment}) at {simulator.base_url}; settings (keys not shown): {settings}")
    print(f"  scenario API POST {simulator.base_url}/_sim/<method>: {', '.join(JitsiState.SCENARIO_METHODS)}",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()
