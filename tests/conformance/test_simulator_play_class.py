"""Every simulator's `play_class` refuses what it cannot play with a reason (a link it never handed out, a class
without people), answered 400 by the scenario API, and `prepare_host` is there for every simulator."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx2
import pytest

from viltbridge.providers.bbb.simulator import running_simulator as bbb_simulator
from viltbridge.providers.goto.simulator import running_simulator as goto_simulator
from viltbridge.providers.jitsi.simulator import running_simulator as jitsi_simulator
from viltbridge.providers.teams.simulator import running_simulator as teams_simulator
from viltbridge.providers.webex.simulator import running_simulator as webex_simulator
from viltbridge.providers.zoom.simulator import running_simulator as zoom_simulator

pytestmark = pytest.mark.pure
SIMULATORS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "zoom": zoom_simulator, "teams": teams_simulator, "webex": webex_simulator, "goto": goto_simulator,
    "bbb": bbb_simulator, "jitsi": jitsi_simulator,
}


@pytest.mark.parametrize("provider", list(SIMULATORS))
def test_play_class_refuses_what_it_cannot_play(provider: str) -> None:
    with SIMULATORS[provider]() as sim, httpx2.Client(base_url=sim.base_url, timeout=10) as http:
        assert http.post("/_sim/prepare_host", json={"email": "tess@example.com"}).status_code == 200
        stranger = {"start": "2026-03-02T15:00:00Z",
                    "join_urls": [{"url": f"{sim.base_url}/j/123?pwd=x", "minutes": 50}]}
        refused = http.post("/_sim/play_class", json=stranger)
        assert refused.status_code == 400 and refused.json()["error"]
        empty = http.post("/_sim/play_class", json={"start": "2026-03-02T15:00:00Z", "join_urls": []})
        assert empty.status_code == 400 and "non-empty list" in empty.json()["error"]
        no_time = http.post("/_sim/play_class", json={**stranger, "start": "at three"})
        assert no_time.status_code == 400 and "not an ISO time" in no_time.json()["error"]
