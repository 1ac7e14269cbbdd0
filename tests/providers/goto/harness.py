"""The acceptance suite's harness for GoTo Training: the adapter against a simulator of its own (started once for
the suite, stopped after it), a fresh world per test with Cole a second organizer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.providers.conftest import Harness, meeting_spec
from tests.providers.goto.conftest import COHOST, HOST, T0, fresh
from viltbridge.providers.goto.adapter import GotoProvider
from viltbridge.providers.goto.simulator import GotoSimulator, running_simulator


@contextmanager
def environment() -> Iterator[GotoSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: GotoSimulator, variant: str) -> Harness:
    return Harness(GotoProvider.from_settings(fresh(sim).settings()), HOST, COHOST, meeting_spec(HOST, COHOST))
