"""An instructor's sessions as an iCalendar feed, and the secret token that lets a calendar app read it.

Calendar apps cannot sign in, so the feed's URL carries a token: an HMAC of the user id and their session
version, so a password change (or deactivation) retires every feed URL handed out before. Each part is one event
whose UID never changes; SEQUENCE counts the part's edits from 0 (RFC 5545: a calendar app takes the event with the
higher SEQUENCE), a cancelled part stays in the feed as STATUS:CANCELLED so subscribed calendars remove it, and
times are given in the part's zone with its VTIMEZONE. A part of a multi-part session says which ("part 2 of 3").
The description carries the host's launch link (the console's launch-as-host, which goes through the signed launch
redirect after signing in: the feed itself holds no launch credential) and URL points to the part's console page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from viltbridge.security.crypto import Keyring
from viltbridge.store.console_views import PartPlace
from viltbridge.store.tables import SessionRow


def feed_token(keyring: Keyring, user_id: int, session_version: int) -> str:
    key = keyring.derived("ics-feed")[0]
    return hmac.new(key, f"{user_id}:{session_version}".encode(), hashlib.sha256).hexdigest()[:40]


def feed_url(public_url: str, keyring: Keyring, user_id: int, session_version: int) -> str:
    """A person's calendar feed: the token in the URL is its key (a new session version replaces it)."""
    return f"{public_url.rstrip('/')}/console/ics/{user_id}/{feed_token(keyring, user_id, session_version)}.ics"


def feed_token_matches(keyring: Keyring, user_id: int, session_version: int, token: str) -> bool:
    message = f"{user_id}:{session_version}".encode()
    return any(hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest()[:40], token)
               for key in keyring.derived("ics-feed"))


def event_uid(connection: str, row: SessionRow) -> str:
    return f"{connection}.{row.external_id}@viltbridge"


def part_page(console_url: str, connection: str, row: SessionRow) -> str:
    return f"{console_url}/my-sessions/{quote(connection, safe='')}/{quote(row.external_id, safe='')}"


def summary(row: SessionRow, place: PartPlace | None) -> str:
    return f"{row.title} ({place.describe()})" if place else row.title


def description(row: SessionRow, place: PartPlace | None, page: str) -> str:
    lines = [row.description.strip()] if row.description.strip() else []
    if place:
        lines.append(f"This is {place.describe()} of a session with several parts.")
    if row.status != "cancelled":
        lines.append(f"Launch as host: {page}/launch")
    lines.append(f"In the console: {page}")
    return "\n\n".join(lines)


def _zone(row: SessionRow) -> ZoneInfo:
    try:
        return ZoneInfo(row.zone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def feed(name: str, sessions: Iterable[tuple[str, SessionRow]], now: datetime, console_url: str,
         places: Mapping[int, PartPlace]) -> bytes:
    """The calendar of one instructor: (connection name, part) pairs; `console_url` is the console's root
    (`https://…/console`), `places` where each part of a multi-part session sits, by row id."""
    calendar = Calendar()
    calendar.add("prodid", "-//viltbridge//console//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"{name} — classes")
    for connection, row in sessions:
        zone = _zone(row)
        event = Event()
        event.add("uid", event_uid(connection, row))
        event.add("dtstamp", now.astimezone(UTC))
        event.add("sequence", row.edits)
        place = places.get(row.id)
        page = part_page(console_url, connection, row)
        event.add("summary", summary(row, place))
        event.add("dtstart", row.starts_at.astimezone(zone))
        event.add("dtend", row.ends_at.astimezone(zone))
        event.add("description", description(row, place, page))
        event.add("url", page)
        event.add("status", "CANCELLED" if row.status == "cancelled" else "CONFIRMED")
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
