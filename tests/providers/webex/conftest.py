"""Webex fixtures: one running simulator for the session (a fresh world per test), an authenticated API client
and the adapter wired to it. The shared provider acceptance suite's harness is in harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx2
import pytest

from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.webex.adapter import WebexProvider
from viltbridge.providers.webex.simulator import WebexSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")


@pytest.fixture(scope="session")
def webex_simulator() -> Iterator[WebexSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def fresh(simulator: WebexSimulator) -> WebexSimulator:
    """A fresh world: clock frozen at T0, the host and cohost licensed."""
    simulator.reset(start=T0)
    for person in (HOST, COHOST):
        simulator.state.seed_person(person.email, first_name=person.first_name, last_name=person.last_name)
    return simulator


@pytest.fixture
def sim(webex_simulator: WebexSimulator) -> WebexSimulator:
    """The shared server with a fresh world: clock frozen at T0, the host and cohost licensed."""
    return fresh(webex_simulator)


def get_token(sim: WebexSimulator) -> str:
    config = sim.config
    response = httpx2.post(sim.token_url, data={"grant_type": "refresh_token", "client_id": config.client_id,
                                                "client_secret": config.client_secret,
                                                "refresh_token": config.refresh_token})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def api(sim: WebexSimulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"},
                       timeout=10) as client:
        yield client


@pytest.fixture
async def provider(sim: WebexSimulator) -> AsyncIterator[WebexProvider]:
    adapter = WebexProvider.from_settings(sim.settings())
    yield adapter
    await adapter.aclose()
