"""What every simulator's `play_class` scenario shares: reading the class the conformance kit (or a test) asks
for, and its timeline.

`play_class(start, join_urls=[{"url", "minutes", "email"?, "host"?}])`: the people who clicked the given provider
links join at `start` (the class's scheduled start, which the kit knows and not every provider does: BBB and Jitsi
have no schedule), each stays `minutes`, the class ends when the last one leaves, and the provider's evidence
(report, analytics callback, webhooks) is then ready. Each simulator resolves a URL to its meeting and person as the
real provider would; `email` is only the account signed in at the keyboard, used where the provider knows people by
their account (a Teams tenant user), never to override what a personal link says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seat:
    url: str
    minutes: float
    email: str = ""
    host: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def query(self, name: str) -> str:
        return (parse_qs(urlsplit(self.url).query).get(name) or [""])[0]

    def leaves_at(self, start: datetime) -> datetime:
        return start + timedelta(minutes=self.minutes)


def parse_class(start: str, join_urls: list[dict[str, Any]]) -> tuple[datetime, list[Seat]]:
    """The start (aware; a naive time is UTC, as Cornerstone's are) and the seats, checked; errors say what to send."""
    try:
        begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"start {start!r} is not an ISO time such as 2026-03-02T15:00:00Z") from None
    begin = begin if begin.tzinfo else begin.replace(tzinfo=UTC)
    if not isinstance(join_urls, list) or not join_urls:
        raise ValueError('join_urls must be a non-empty list of {"url": ..., "minutes": ...}')
    seats = []
    for entry in join_urls:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ValueError(f'each of join_urls needs a "url" string; got {entry!r}')
        minutes = entry.get("minutes")
        if not isinstance(minutes, int | float) or minutes <= 0:
            raise ValueError(f'each of join_urls needs "minutes" > 0; got {minutes!r} for {entry["url"]}')
        seats.append(Seat(entry["url"], float(minutes), str(entry.get("email") or ""), bool(entry.get("host"))))
    return begin.astimezone(UTC), seats


def only_meeting(keys: list[str]) -> str:
    """The one meeting every link points at: `play_class` plays one class."""
    distinct = sorted(set(keys))
    if len(distinct) != 1:
        raise ValueError(f"the join URLs point at {len(distinct)} meetings ({', '.join(distinct)}); "
                         "play_class plays one class at a time")
    return distinct[0]


def by_leaving_time(seats: list[Seat]) -> list[Seat]:
    """Who leaves first comes first; the last one out ends the class."""
    return sorted(seats, key=lambda seat: seat.minutes)
