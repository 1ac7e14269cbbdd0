"""Times on console pages: in the viewer's own zone (their account's setting), inside a <time> element that carries
the UTC instant for machines and shows it on hover for people; and the zone of a part said to be a guess, since the
LMS sends only an offset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from viltbridge.core.part_states import AttendancePhase, PartLife, attendance_phase, part_life
from viltbridge.core.times import format_offset

FORMATS = {"datetime": "%a %Y-%m-%d %H:%M", "date": "%a %Y-%m-%d", "time": "%H:%M", "seconds": "%Y-%m-%d %H:%M:%S"}


def zone_named(name: str | None) -> ZoneInfo:
    """A user's zone; UTC when unset or no longer known to this machine's tz database."""
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def viewer_zone(context: Context) -> ZoneInfo:
    session = context.get("session")
    return zone_named(session.user.time_zone if session is not None else None)


def time_element(moment: datetime, zone: ZoneInfo, style: str = "datetime") -> Markup:
    utc = moment.astimezone(UTC)
    local = moment.astimezone(zone).strftime(FORMATS[style])
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), utc.strftime("%Y-%m-%d %H:%M"), local)


@pass_context
def local_time(context: Context, moment: datetime | None, style: str = "datetime") -> Markup:
    """`{{ row.starts_at | local_time }}`: the viewer's wall clock, the UTC instant on hover."""
    if moment is None:
        return Markup("—")
    return time_element(moment, viewer_zone(context), style)


@pass_context
def viewer_zone_name(context: Context) -> str:
    return viewer_zone(context).key


def guessed_zone(offset_minutes: int, zone: str) -> str:
    """The LMS sends an offset; the IANA zone beside it is our guess, and says so."""
    return f"UTC{format_offset(offset_minutes)}, zone guessed as {zone}"


def _life_badge(row: Any, now: datetime) -> Markup:
    life = part_life(row.status, row.starts_at, row.ends_at, now)
    return Markup('<span class="badge life-{}">{}</span>').format(life.value, life.value)


def _attendance_badge(row: Any, now: datetime) -> Markup:
    phase = attendance_phase(row.attendance_state, row.starts_at, now)
    return Markup('<span class="badge attendance-{}">{}</span>').format(phase.name.lower().replace("_", "-"),
                                                                        phase.value)


def register(env: Any) -> None:
    """The filters every console template may use."""
    env.filters.update(local_time=local_time, life_badge=_life_badge, attendance_badge=_attendance_badge)
    env.globals.update(viewer_zone_name=viewer_zone_name, guessed_zone=guessed_zone, PartLife=PartLife,
                       AttendancePhase=AttendancePhase)

