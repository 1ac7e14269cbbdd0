"""Harnesses for the provider acceptance suite: each provider supplies its real adapter wired to its environment
(its simulator, where the provider has an API) and hosts that exist there. Add a provider = add a harness."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from viltbridge.core.provider import InstructorSpec, MeetingSpec, Provider
from viltbridge.providers.link.adapter import LinkProvider
from viltbridge.providers.zoom.adapter import ZoomProvider
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator


class Capture(logging.Handler):
    """Collects log lines, DEBUG included (tests of what providers log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Harness:
    provider: Provider
    host: InstructorSpec
    cohost: InstructorSpec
    spec: Callable[..., MeetingSpec]


def meeting_spec(host: InstructorSpec, cohost: InstructorSpec) -> Callable[..., MeetingSpec]:
    def build(**changes: object) -> MeetingSpec:
        start = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
        values: dict[str, object] = {
            "session_key": "1:sess-1", "title": "Safety basics", "description": "Onboarding",
            "starts_at": start, "ends_at": start + timedelta(hours=1), "zone": "America/New_York",
            "utc_offset_minutes": -300, "host": host, "co_hosts": (cohost,), "extended_options": {},
        }
        values.update(changes)
        return MeetingSpec(**values)  # type: ignore[arg-type]

    return build


def link_harness() -> Iterator[Harness]:
    host = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
    cohost = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")
    yield Harness(LinkProvider.from_settings({}), host, cohost, meeting_spec(host, cohost))


def zoom_settings(sim: ZoomSimulator, **extra: str) -> dict[str, str]:
    config = sim.config
    return {"account_id": config.account_id, "client_id": config.client_id, "client_secret": config.client_secret,
            "webhook_secret_token": config.webhook_secret_token, "api_base_url": sim.api_base_url,
            "oauth_token_url": sim.oauth_token_url, **extra}


@pytest.fixture(scope="session")
def zoom_simulator() -> Iterator[ZoomSimulator]:
    with running_simulator(start=datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) as simulator:
        yield simulator


def zoom_harness(sim: ZoomSimulator) -> Iterator[Harness]:
    sim.reset(start=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    host = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
    cohost = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")
    for person in (host, cohost):
        sim.state.seed_user(person.email, first_name=person.first_name, last_name=person.last_name)
    yield Harness(ZoomProvider.from_settings(zoom_settings(sim)), host, cohost, meeting_spec(host, cohost))


HARNESSES = ("link", "zoom")


@pytest.fixture(params=HARNESSES)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "zoom":
        yield from zoom_harness(request.getfixturevalue("zoom_simulator"))
    else:
        yield from link_harness()
