"""The registration batcher, with the real Zoom client against the simulator (wrapped only to count calls)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.providers.conftest import Harness, zoom_settings
from tests.providers.zoom.harness import zoom_harness
from viltbridge.core.provider import Person
from viltbridge.providers.http import Budget
from viltbridge.providers.zoom.client import ZoomClient
from viltbridge.providers.zoom.registrar import Registrar
from viltbridge.providers.zoom.settings import ZoomSettings
from viltbridge.providers.zoom.simulator import ZoomSimulator

pytestmark = pytest.mark.pure


class CountingClient(ZoomClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []
        self.in_flight = self.most_in_flight = 0

    async def _counted(self, size: int, call: Any) -> Any:
        self.calls.append(size)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await call
        finally:
            self.in_flight -= 1

    async def add_registrant(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self._counted(1, super().add_registrant(*args, **kwargs))  # type: ignore[no-any-return]

    async def batch_registrants(self, meeting_id: Any, people: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return await self._counted(len(people), super().batch_registrants(meeting_id, people, **kwargs))  # type: ignore[no-any-return]


@pytest.fixture
def zoom(zoom_simulator: ZoomSimulator) -> Harness:
    return zoom_harness(zoom_simulator)


async def test_one_call_at_a_time_per_meeting_and_everyone_registered(zoom: Harness,
                                                                     zoom_simulator: ZoomSimulator) -> None:
    client = CountingClient(ZoomSettings.from_settings(zoom_settings(zoom_simulator)))
    meeting = await zoom.provider.create_meeting(zoom.spec())
    registrar = Registrar(client, Budget(total=5.0, max_queue_wait=2.0, attempt_timeout=4.0))
    people = [Person(f"p{n}@example.com") for n in range(75)]
    rows = await asyncio.gather(*(registrar.register(meeting.meeting_id, p) for p in people))
    assert {row["email"].lower() for row in rows} == {p.email for p in people}
    assert client.most_in_flight == 1
    assert sum(client.calls) == 75 and len(client.calls) <= 5  # e.g. [1, 30, 30, 14]
    await client.aclose()


async def test_a_failed_batch_fails_only_its_clicks_and_the_queue_moves_on(zoom: Harness,
                                                                           zoom_simulator: ZoomSimulator) -> None:
    client = CountingClient(ZoomSettings.from_settings(zoom_settings(zoom_simulator)))
    meeting = await zoom.provider.create_meeting(zoom.spec())
    registrar = Registrar(client, Budget(total=3.0, max_queue_wait=1.0, attempt_timeout=2.0, max_attempts=1))
    zoom_simulator.state.inject_fault(400, count=1, path="registrants")
    first = await asyncio.gather(registrar.register(meeting.meeting_id, Person("a@example.com")),
                                 return_exceptions=True)
    assert isinstance(first[0], Exception)
    after = await registrar.register(meeting.meeting_id, Person("b@example.com"))
    assert after["registrant_id"]
    await client.aclose()
