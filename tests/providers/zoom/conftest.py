"""Zoom simulator fixtures: a running simulator on a frozen clock, an authenticated API client, a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from viltbridge.providers.serving import BackgroundServer
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEACHER = "teacher@example.edu"
HTTP = httpx2.Client(timeout=10)  # one pooled client for plain calls: building a client costs ~30 ms


def get_token(sim: ZoomSimulator) -> str:
    response = HTTP.post(sim.oauth_token_url, auth=(sim.config.client_id, sim.config.client_secret),
                         data={"grant_type": "account_credentials", "account_id": sim.config.account_id})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def api_client(sim: ZoomSimulator, **kwargs: Any) -> httpx2.Client:
    return httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"}, **kwargs)


@pytest.fixture(scope="session")
def _server() -> Iterator[ZoomSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator
    HTTP.close()


@pytest.fixture
def sim(_server: ZoomSimulator) -> ZoomSimulator:
    """The shared server with a fresh world: clock frozen at T0, one licensed teacher. `sim.reset(...)` again for
    another configuration."""
    _server.reset(start=T0)
    _server.state.seed_user(TEACHER, first_name="Tess", last_name="Teacher")
    return _server


@pytest.fixture
def api(sim: ZoomSimulator) -> Iterator[httpx2.Client]:
    with api_client(sim) as client:
        yield client


class Receiver:
    """A webhook endpoint that records raw requests and answers Zoom's url_validation challenge like a real app."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.server = BackgroundServer(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))
        self.url = self.server.url + "/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        payload = json.loads(body)
        if payload["event"] == "endpoint.url_validation":
            plain = payload["payload"]["plainToken"]
            digest = hmac.new(self.secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
            return JSONResponse({"plainToken": plain, "encryptedToken": digest})
        return Response(status_code=self.status)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.requests]


@pytest.fixture(scope="session")
def _receiver_server() -> Iterator[Receiver]:
    hook = Receiver("")
    hook.server.start()
    yield hook
    hook.server.stop()


@pytest.fixture
def receiver(sim: ZoomSimulator, _receiver_server: Receiver) -> Receiver:
    _receiver_server.requests.clear()
    _receiver_server.status = 200
    _receiver_server.secret = sim.config.webhook_secret_token
    sim.state.configure_webhooks(url=_receiver_server.url)
    return _receiver_server


def create_meeting(api: httpx2.Client, host: str = TEACHER, **body: Any) -> dict[str, Any]:
    payload = {"topic": "Algebra 101", "type": 2, "start_time": "2026-03-02T09:00:00Z", "duration": 60,
               "timezone": "Europe/Berlin", **body}
    response = api.post(f"/users/{host}/meetings", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def zoom_lms(client: Any, db: Any, zoom_simulator: ZoomSimulator) -> Any:
    """The LMS, with a `zoom` connection pointed at the simulator (reset to NOW) and Tess as a Zoom host."""
    from tests.conftest import NOW, Lms
    from tests.providers.conftest import zoom_settings

    zoom_simulator.reset(start=NOW)
    zoom_simulator.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    return Lms(client, created["username"], created["password"])
