"""An instructor's sessions as an iCalendar feed, and the secret token that lets a calendar app read it.

Calendar apps cannot sign in, so the feed's URL carries a token: an HMAC of the user id and their session
version, so a password change (or deactivation) retires every feed URL handed out before. Each part is one event
whose UID never changes; SEQUENCE grows with every edit (minutes since 2020 at the last change, which only grows
and fits the 32-bit integer calendar apps expect), a cancelled part stays in the feed as STATUS:CANCELLED so
subscribed calendars remove it, and times are given in the part's zone with its VTIMEZONE.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from viltbridge.security.crypto import Keyring
from viltbridge.store.tables import SessionRow

SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def feed_token(keyring: Keyring, user_id: int, session_version: int) -> str:
    key = keyring.derived("ics-feed")[0]
    return hmac.new(key, f"{user_id}:{session_version}".encode(), hashlib.sha256).hexdigest()[:40]


def feed_token_matches(keyring: Keyring, user_id: int, session_version: int, token: str) -> bool:
    message = f"{user_id}:{session_version}".encode()
    return any(hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest()[:40], token)
               for key in keyring.derived("ics-feed"))


def event_uid(connection: str, row: SessionRow) -> str:
    return f"{connection}.{row.external_id}@viltbridge"


def sequence(row: SessionRow) -> int:
    changed = row.updated_at or row.created_at or SEQUENCE_EPOCH
    return max(0, int((changed - SEQUENCE_EPOCH).total_seconds() // 60))


def _zone(row: SessionRow) -> ZoneInfo:
    try:
        return ZoneInfo(row.zone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def feed(name: str, sessions: Iterable[tuple[str, SessionRow]], now: datetime, launch_page: str) -> bytes:
    """The calendar of one instructor: (connection name, part) pairs; `launch_page` is where the event points."""
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
        event.add("sequence", sequence(row))
        event.add("summary", row.title)
        event.add("dtstart", row.starts_at.astimezone(zone))
        event.add("dtend", row.ends_at.astimezone(zone))
        if row.description:
            event.add("description", row.description)
        event.add("url", launch_page)
        event.add("status", "CANCELLED" if row.status == "cancelled" else "CONFIRMED")
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
