"""GoTo Training fixtures: one running simulator for the session (a fresh world per test), an authenticated API
client and the adapter wired to it. The shared provider acceptance suite's harness is in harness.py."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms
from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.goto.adapter import GotoProvider
from viltbridge.providers.goto.simulator import GotoSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# The organizer who authorised viltbridge (the simulator's default organizer) and a co-organizer on the account.
HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")
COHOST_KEY = "3000000000000000002"


@pytest.fixture(scope="session")
def goto_simulator() -> Iterator[GotoSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def fresh(simulator: GotoSimulator, **config: Any) -> GotoSimulator:
    """A fresh world: clock frozen at T0 (unless `start` is given), Cole a second organizer on the account."""
    simulator.reset(**{"start": T0, **config})
    simulator.state.seed_organizer(COHOST.email, "Cole", "Helper", organizer_key=COHOST_KEY)
    return simulator


@pytest.fixture
def sim(goto_simulator: GotoSimulator) -> GotoSimulator:
    return fresh(goto_simulator)


def get_token(sim: GotoSimulator) -> str:
    config = sim.config
    basic = base64.b64encode(f"{config.client_id}:{config.client_secret}".encode()).decode()
    response = httpx2.post(sim.token_url, data={"grant_type": "refresh_token", "refresh_token": config.refresh_token},
                           headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def api(sim: GotoSimulator) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"},
                       timeout=10) as client:
        yield client


@pytest.fixture
async def provider(sim: GotoSimulator) -> AsyncIterator[GotoProvider]:
    adapter = GotoProvider.from_settings(sim.settings())
    yield adapter
    await adapter.aclose()


TESS = "tess@example.com"


@pytest.fixture
def goto_lms(client: TestClient, db: Db, goto_simulator: GotoSimulator) -> Lms:
    """The LMS with a `goto` connection pointed at the simulator (on the app's time), Tess added as instructor."""
    fresh(goto_simulator, start=NOW, record_exchanges=True)
    created = db.create_connection("acme-goto", "goto", **goto_simulator.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    return lms
