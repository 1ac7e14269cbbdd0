"""The acceptance suite's harness for BigBlueButton: the adapter against a simulator of its own (started once for
the suite, stopped after it), a fresh world per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.providers.bbb.conftest import COHOST, HOST, T0
from tests.providers.conftest import Harness, meeting_spec
from viltbridge.providers.bbb.adapter import BbbProvider
from viltbridge.providers.bbb.simulator import BbbSimulator, running_simulator


@contextmanager
def environment() -> Iterator[BbbSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: BbbSimulator, variant: str) -> Harness:
    sim.reset(start=T0)
    return Harness(BbbProvider.from_settings(sim.settings()), HOST, COHOST, meeting_spec(HOST, COHOST))
