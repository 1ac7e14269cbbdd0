"""The acceptance suite's harness for Webex: the adapter against a simulator of its own (started once for the
suite, stopped after it), a fresh world per test with the host and cohost licensed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.providers.conftest import Harness, meeting_spec
from tests.providers.webex.conftest import COHOST, HOST, T0, fresh
from viltbridge.providers.webex.adapter import WebexProvider
from viltbridge.providers.webex.simulator import WebexSimulator, running_simulator


@contextmanager
def environment() -> Iterator[WebexSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: WebexSimulator, variant: str) -> Harness:
    return Harness(WebexProvider.from_settings(fresh(sim).settings()), HOST, COHOST, meeting_spec(HOST, COHOST))
