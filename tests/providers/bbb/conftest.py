"""BBB fixtures: one running simulator for the session (a fresh world per test) and the adapter wired to it. The
shared provider acceptance suite's harness is in harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.bbb.adapter import BbbProvider
from viltbridge.providers.bbb.simulator import BbbSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")


@pytest.fixture(scope="session")
def bbb_simulator() -> Iterator[BbbSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


@pytest.fixture
def sim(bbb_simulator: BbbSimulator) -> BbbSimulator:
    """The shared server with a fresh world, clock frozen at T0."""
    bbb_simulator.reset(start=T0)
    return bbb_simulator


@pytest.fixture
async def provider(sim: BbbSimulator) -> AsyncIterator[BbbProvider]:
    adapter = BbbProvider.from_settings(sim.settings())
    yield adapter
    await adapter.aclose()
