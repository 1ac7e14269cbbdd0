"""LMS date and offset parsing, and the IANA-zone guess for providers that want one.

Cornerstone sends `DateBegin`/`DateEnd` as UTC wall time (`YYYY-MM-DDTHH:MM:SS`, no offset) and the session's
zone only as `TimeZone.UTCOffset`, in no specified format. We store UTC plus the offset, and guess a zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from viltbridge.core.errors import InvalidInput

_OFFSET = re.compile(
    r"""^\s*
    (?:\(\s*)?                      # "(UTC-05:00) Eastern Time" style
    (?:UTC|GMT)?\s*
    (?P<sign>[+\-\u2212])?\s*
    (?P<hours>\d{1,2})
    (?:(?::?)(?P<minutes>\d{2}))?
    \s*(?:\)(?P<label>.*))?$""",
    re.IGNORECASE | re.VERBOSE,
)
# "UTC", "GMT", "Z" alone, or "(UTC) Coordinated Universal Time"; not words that merely start with them ("Zagreb").
_ZERO_OFFSET = re.compile(r"^\s*(?:\(\s*(?:UTC|GMT|Z)\s*\)(?P<label>.*)|(?:UTC|GMT|Z)\s*)$", re.IGNORECASE)

EARLIEST_YEAR, LATEST_YEAR = 1970, 2200
OFFSET_EXAMPLES = "-05:00, -0500, -5, UTC-05:00, GMT+5:30 or '(UTC-05:00) Eastern Time'"


def parse_lms_datetime(value: object, *, field: str) -> datetime:
    """Parse a Cornerstone date as UTC. Tolerates `Z`, an explicit offset and fractional seconds."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"{field} is required, as UTC in the form YYYY-MM-DDTHH:MM:SS (e.g. 2026-03-01T14:00:00)."
        )
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field} '{value[:60]}' is not a date; send UTC as YYYY-MM-DDTHH:MM:SS (e.g. 2026-03-01T14:00:00)."
        ) from None
    try:
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        moment = None
    # Beyond these years no class is real, and zone arithmetic near year 1 or 9999 overflows.
    if moment is None or not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidInput(
            f"{field} '{value[:60]}' is outside the years {EARLIEST_YEAR}-{LATEST_YEAR}; send the session's real "
            "date as UTC, YYYY-MM-DDTHH:MM:SS (e.g. 2026-03-01T14:00:00)."
        )
    return moment


def parse_utc_offset(value: object) -> int:
    """Return the offset in minutes east of UTC, or raise InvalidInput saying what is accepted."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            minutes = round(float(value) * 60)
        except (ValueError, OverflowError):  # NaN, infinity, absurdly large numbers
            raise InvalidInput(
                f"TimeZone.UTCOffset is not a usable number of hours; send e.g. {OFFSET_EXAMPLES}."
            ) from None
        return _checked_minutes(minutes, value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"TimeZone.UTCOffset is required; send the session's offset from UTC, e.g. {OFFSET_EXAMPLES}."
        )
    match = _OFFSET.match(value)
    if match is None:
        zero = _ZERO_OFFSET.match(value)
        if zero is not None and not re.search(r"\d", zero.group("label") or ""):
            return 0
        raise InvalidInput(f"TimeZone.UTCOffset '{value[:60]}' is not an offset from UTC; send e.g. {OFFSET_EXAMPLES}.")
    sign = -1 if match.group("sign") in ("-", "\u2212") else 1
    hours = int(match.group("hours"))
    minutes = int(match.group("minutes") or 0)
    if minutes >= 60:
        raise InvalidInput(
            f"TimeZone.UTCOffset '{value[:60]}' has {minutes} minutes; minutes must be below 60. "
            f"Send e.g. {OFFSET_EXAMPLES}."
        )
    return _checked_minutes(sign * (hours * 60 + minutes), value)


def _checked_minutes(minutes: int, original: object) -> int:
    # Real offsets run from UTC-12:00 to UTC+14:00.
    if not -12 * 60 <= minutes <= 14 * 60:
        raise InvalidInput(
            f"TimeZone.UTCOffset {original!r} is outside UTC-12:00..UTC+14:00; send the session's real offset, "
            f"e.g. {OFFSET_EXAMPLES}."
        )
    return minutes


def format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


# Zones preferred when several share an offset at a moment: the ones most LMS tenants use.
_PREFERRED_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix",
    "America/Anchorage", "Pacific/Honolulu", "America/Halifax", "America/St_Johns", "America/Sao_Paulo",
    "America/Mexico_City", "America/Bogota", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Athens",
    "Europe/Moscow", "Africa/Johannesburg", "Africa/Lagos", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata",
    "Asia/Kathmandu", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo",
    "Australia/Adelaide", "Australia/Sydney", "Australia/Brisbane", "Pacific/Auckland",
)


@lru_cache(maxsize=1)
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(zone for zone in available_timezones() if "/" in zone and not zone.startswith("Etc/")))


def guess_zone(offset_minutes: int, at: datetime) -> str:
    """Pick an IANA zone whose offset equals `offset_minutes` at instant `at`.

    It is a guess: the LMS sends only an offset. Preferred zones win; otherwise the first matching zone
    alphabetically; with none, a fixed `Etc/GMT±H` zone (whose sign is inverted by POSIX convention).
    """
    target = timedelta(minutes=offset_minutes)
    instant = at.astimezone(UTC)
    for name in _PREFERRED_ZONES + _all_zones():
        if instant.astimezone(ZoneInfo(name)).utcoffset() == target:
            return name
    if offset_minutes % 60 == 0:
        hours = -offset_minutes // 60
        return "Etc/GMT" if hours == 0 else f"Etc/GMT{hours:+d}"
    return "UTC"
