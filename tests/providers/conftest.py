"""Harnesses for the provider acceptance suite: each provider supplies an adapter wired to its environment
(a simulator where the provider has an API) and a host that exists there. Add a provider = add a harness."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from viltbridge.core.provider import InstructorSpec, MeetingSpec, Provider
from viltbridge.providers.link.adapter import LinkProvider


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


HARNESSES: dict[str, Callable[[], Iterator[Harness]]] = {
    "link": link_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    yield from HARNESSES[request.param]()
