"""The acceptance suite's harness for Teams: the adapter against a Graph simulator of its own (started once for the
suite, stopped after it), a fresh tenant per test, once per meeting route."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.providers.conftest import Harness, meeting_spec
from tests.providers.teams.conftest import COHOST, HOST, T0, fresh
from viltbridge.providers.teams.adapter import TeamsProvider
from viltbridge.providers.teams.simulator import TeamsSimulator, running_simulator

VARIANTS = ("online_meeting", "calendar_event")


@contextmanager
def environment() -> Iterator[TeamsSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: TeamsSimulator, variant: str) -> Harness:
    provider = TeamsProvider.from_settings(fresh(sim).settings(calendar_events=variant == "calendar_event"))
    return Harness(provider, HOST, COHOST, meeting_spec(HOST, COHOST))
