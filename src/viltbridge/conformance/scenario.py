"""The provider-scenario hook: after the kit has every person's launch link, something must make them attend.

- `SimulatorScenario` (`--provider-scenario http://sim`): a viltbridge provider simulator plays the class through
  its uniform scenario API: `POST {sim}/_sim/prepare_host {"email"}` (a licensed host account exists; a no-op where
  the provider has no accounts) before instructors are added, and `POST {sim}/_sim/play_class {"start", "join_urls":
  [{"url", "minutes", "email", "host"}]}` after the launches. The simulator resolves each URL to its meeting and
  person the way the provider would (registrant token, signed join, JWT, personal link); `email` is only who is at
  the keyboard (the signed-in account, where the provider has one, e.g. a Teams tenant user).
- `ClickScenario` (`--provider-scenario clicks`): for connectors whose only evidence is the click itself (the
  `link` provider's launch ledger). Whoever attends opens their link while the class is open; the early leaver never
  clicks, since a click cannot say how long someone stayed.

Playing moves the simulator's clock to the class and past it (the provider's reports are ready only after the
class), so sessions created afterwards would start "in the past" there: `attendance.played` is the last case, and
a simulator serves one run of the kit (restart it, or `reset` it in tests, before the next).

The kit's own launch call never enters the provider: it opens the connector's `joinUrl` once without following
redirects and hands the `Location` (or, when the `joinUrl` already points at the provider, the `joinUrl`) on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import httpx2

from viltbridge.conformance.driver import LmsDriver


@dataclass
class Attendee:
    email: str
    minutes: int
    host: bool = False
    join_url: str = ""


class ScenarioFailed(Exception):
    """The scenario could not be played (the simulator refused, a link led nowhere); the message says why."""


class Scenario(Protocol):
    name: str

    def prepare_host(self, email: str) -> None: ...

    def play(self, driver: LmsDriver, start: datetime, people: list[Attendee]) -> None: ...


def provider_link(driver: LmsDriver, join_url: str, provider_base: str | None = None) -> str:
    """Where a browser goes from the connector's joinUrl: its redirect target, not followed further."""
    if provider_base and urlsplit(join_url).netloc == urlsplit(provider_base).netloc:
        return join_url
    opened = driver.open_link(join_url)
    if opened.status in (301, 302, 303, 307, 308) and opened.headers.get("location"):
        return urljoin(join_url, opened.headers["location"])
    if 200 <= opened.status < 300:
        return join_url  # a page of the connector's own (or the provider's, reached directly)
    raise ScenarioFailed(f"opening the joinUrl: expected a redirect to the provider; got {opened.summary()}")


class SimulatorScenario:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = self.base_url
        self.http = httpx2.Client(timeout=timeout)

    def _post(self, method: str, payload: dict[str, object]) -> object:
        try:
            response = self.http.post(f"{self.base_url}/_sim/{method}", json=payload)
        except httpx2.HTTPError as exc:
            raise ScenarioFailed(f"the simulator at {self.base_url} did not answer {method}: {exc}") from exc
        if response.status_code != 200:
            raise ScenarioFailed(f"the simulator refused {method}: {response.status_code} {response.text[:300]}")
        return response.json()

    def prepare_host(self, email: str) -> None:
        self._post("prepare_host", {"email": email})

    def play(self, driver: LmsDriver, start: datetime, people: list[Attendee]) -> None:
        urls = [{"url": provider_link(driver, person.join_url, self.base_url), "minutes": person.minutes,
                 "email": person.email, "host": person.host} for person in people]
        self._post("play_class", {"start": start.isoformat(), "join_urls": urls})

    def close(self) -> None:
        self.http.close()


class ClickScenario:
    """Attendance from clicks alone: everyone who stays opens their link now; the early leaver does not click."""

    name = "clicks"
    min_minutes = 30

    def prepare_host(self, email: str) -> None:
        return None

    def play(self, driver: LmsDriver, start: datetime, people: list[Attendee]) -> None:
        for person in people:
            if person.minutes >= self.min_minutes:
                provider_link(driver, person.join_url)

    def close(self) -> None:
        return None


def scenario_for(value: str | None) -> SimulatorScenario | ClickScenario | None:
    if not value:
        return None
    if value == "clicks":
        return ClickScenario()
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"--provider-scenario {value!r}: give a simulator's base URL (http://127.0.0.1:8765) or "
                         "'clicks'")
    return SimulatorScenario(value)
