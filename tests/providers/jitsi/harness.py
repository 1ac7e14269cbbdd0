"""The acceptance suite's harness for Jitsi: the adapter against a simulator of its own (started once for the
suite, stopped after it), as JaaS and as self-hosted with and without an event module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.providers.conftest import Harness, meeting_spec
from tests.providers.jitsi.conftest import COHOST, HOST, T0
from viltbridge.providers.jitsi.adapter import JitsiProvider
from viltbridge.providers.jitsi.simulator import JitsiSimulator, running_simulator

VARIANTS = ("jaas", "self_hosted", "self_hosted_webhooks")


@contextmanager
def environment() -> Iterator[JitsiSimulator]:
    with running_simulator(start=T0) as simulator:
        yield simulator


def harness(sim: JitsiSimulator, variant: str) -> Harness:
    sim.reset(start=T0, deployment="jaas" if variant == "jaas" else "self_hosted")
    extra = {"webhook_secret": sim.config.webhook_secret} if variant.endswith("webhooks") else {}
    return Harness(JitsiProvider.from_settings(sim.settings(**extra)), HOST, COHOST, meeting_spec(HOST, COHOST))
