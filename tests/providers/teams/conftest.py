"""Teams fixtures: one running Graph simulator per test session and a fresh tenant per test. The shared provider
acceptance suite's harness is in harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx2
import pytest

from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.teams.adapter import TeamsProvider
from viltbridge.providers.teams.simulator import TeamsSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")


@pytest.fixture(scope="session")
def teams_simulator() -> Iterator[TeamsSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def fresh(simulator: TeamsSimulator) -> TeamsSimulator:
    """A fresh tenant: clock frozen at T0, Tess and Cole as users with the access policy."""
    simulator.reset(start=T0)
    for person in (HOST, COHOST):
        simulator.state.seed_user(person.email, f"{person.first_name} {person.last_name}")
    return simulator


@pytest.fixture
def sim(teams_simulator: TeamsSimulator) -> TeamsSimulator:
    """The shared server with a fresh tenant: clock frozen at T0, Tess and Cole as users with the access policy."""
    return fresh(teams_simulator)


@pytest.fixture
def provider(sim: TeamsSimulator) -> TeamsProvider:
    return TeamsProvider.from_settings(sim.settings())


def get_token(sim: TeamsSimulator) -> str:
    config = sim.config
    response = httpx2.post(f"{sim.base_url}/{config.tenant_id}/oauth2/v2.0/token",
                           data={"grant_type": "client_credentials", "client_id": config.client_id,
                                 "client_secret": config.client_secret, "scope": "https://graph.microsoft.com/.default"})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def api(sim: TeamsSimulator) -> Iterator[httpx2.Client]:
    """A plain HTTP client on the simulator's Graph, authenticated."""
    with httpx2.Client(base_url=sim.graph_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"},
                       timeout=10) as client:
        yield client
