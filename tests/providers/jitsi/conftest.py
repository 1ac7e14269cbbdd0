"""Jitsi fixtures: one running simulator for the session (a fresh world per test, JaaS or self-hosted) and the
adapter wired to it. The shared provider acceptance suite's harness is in harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.jitsi.adapter import JitsiProvider
from viltbridge.providers.jitsi.simulator import JitsiSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")


@pytest.fixture(scope="session")
def jitsi_simulator() -> Iterator[JitsiSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


@pytest.fixture
def sim(jitsi_simulator: JitsiSimulator) -> JitsiSimulator:
    """The shared server as JaaS with a fresh world, clock frozen at T0."""
    jitsi_simulator.reset(start=T0, deployment="jaas")
    return jitsi_simulator


@pytest.fixture
def self_hosted(jitsi_simulator: JitsiSimulator) -> JitsiSimulator:
    """The shared server as a self-hosted Jitsi (token auth, no event module), clock frozen at T0."""
    jitsi_simulator.reset(start=T0, deployment="self_hosted")
    return jitsi_simulator


@pytest.fixture
def provider(sim: JitsiSimulator) -> JitsiProvider:
    return JitsiProvider.from_settings(sim.settings())
