"""The acceptance suite's harness for Zoom: the adapter against a simulator of its own (started once for the suite,
stopped after it), with Tess and Cole as licensed users. `zoom_harness` serves this folder's tests too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from tests.providers.conftest import Harness, meeting_spec, zoom_settings
from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.zoom.adapter import ZoomProvider
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def zoom_harness(sim: ZoomSimulator) -> Harness:
    """The adapter on `sim`, reset to a fresh world with the host and cohost as licensed users."""
    sim.reset(start=T0)
    host = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
    cohost = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")
    for person in (host, cohost):
        sim.state.seed_user(person.email, first_name=person.first_name, last_name=person.last_name)
    return Harness(ZoomProvider.from_settings(zoom_settings(sim)), host, cohost, meeting_spec(host, cohost))


@contextmanager
def environment() -> Iterator[ZoomSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: ZoomSimulator, variant: str) -> Harness:
    return zoom_harness(sim)
