"""The Webex simulator's API operations: one handler per (method, path) of the official Webex Meetings OpenAPI
document that the connector uses. Handlers run under the state lock and answer (status, body, headers)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from viltbridge.providers.webex.simulator.state import (
    AGENDA_LIMIT,
    MAX_DURATION,
    MIN_DURATION,
    TITLE_LIMIT,
    Series,
    WebexApiError,
    WebexState,
    iso,
    parse_time,
)

__all__ = ["API_ENDPOINTS", "ApiCall", "ApiEndpoint"]

INVALID = "The input parameters contain invalid items."
Answer = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class ApiCall:
    path: dict[str, str]
    query: dict[str, str]
    body: Any
    url: str  # the request URL without its query: the base of `Link` next URLs
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiEndpoint:
    method: str
    path: str  # as in the spec, under /v1
    handler: Callable[[WebexState, ApiCall], Answer]


# -- helpers ------------------------------------------------------------------------------------------------------


def _object(call: ApiCall) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise WebexApiError(400, INVALID, "The request body must be a JSON object.")
    return call.body


def _max(call: ApiCall, default: int = 10, ceiling: int = 100) -> int:
    raw = call.query.get("max", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= ceiling:
        raise WebexApiError(400, INVALID, f"max must be between 1 and {ceiling}.")
    return int(raw)


def _page(call: ApiCall, items: list[dict[str, Any]], default_max: int = 10) -> Answer:
    """One page of `items` and, when more follow, `Link: <next URL>; rel="next"` (RFC 5988, §3.7). The cursor is
    opaque to clients [L: Webex's cursor format is its own; this one encodes the offset]."""
    size = _max(call, default_max)
    cursor = call.query.get("cursor", "")
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except ValueError:
        raise WebexApiError(400, INVALID, "cursor is not valid.") from None
    headers: dict[str, str] = {}
    if offset + size < len(items):
        query = {k: v for k, v in call.query.items() if k != "cursor"}
        query["cursor"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        headers["Link"] = f'<{call.url}?{urlencode(query)}>; rel="next"'
    return 200, {"items": items[offset:offset + size]}, headers


def _host(state: WebexState, email: object) -> dict[str, Any]:
    """The host a Service App schedules for: a licensed person of the org. [L] Webex's exact status and wording
    for an unlicensed host are not documented; 400 with a description is what the docs' error model suggests."""
    if not isinstance(email, str) or not email:
        raise WebexApiError(400, INVALID, "hostEmail is required when a Service App schedules a meeting.")
    person = state.person(email)
    if person is None:
        raise WebexApiError(404, "The requested resource could not be found.", f"User {email} not found.")
    if not state.hosts_here(person):
        raise WebexApiError(400, INVALID, f"User {email} does not have a host account on the site.")
    return person


def _schedule(state: WebexState, body: dict[str, Any], series: Series | None) -> None:
    """Validate and apply title/agenda/start/end/timezone/options (create: `series` None, checked by caller)."""
    title = body.get("title", series.title if series else None)
    if not isinstance(title, str) or not title.strip():
        raise WebexApiError(400, INVALID, "title is required.")
    if len(title) > TITLE_LIMIT:
        raise WebexApiError(400, INVALID, f"title must be at most {TITLE_LIMIT} characters.")
    agenda = body.get("agenda", series.agenda if series else "")
    if not isinstance(agenda, str) or len(agenda) > AGENDA_LIMIT:
        raise WebexApiError(400, INVALID, f"agenda must be at most {AGENDA_LIMIT} characters.")
    start = parse_time(body["start"], "start") if "start" in body or series is None else series.start
    end = parse_time(body["end"], "end") if "end" in body or series is None else series.end
    if not MIN_DURATION <= end - start <= MAX_DURATION:
        raise WebexApiError(400, INVALID, "The meeting must last between 10 minutes and 24 hours.")
    if ("start" in body or series is None) and start < state.clock.now() - timedelta(minutes=5):
        raise WebexApiError(400, INVALID, "start cannot be in the past.")  # [L] 5 minutes' grace
    security = body.get("unlockedMeetingJoinSecurity", "allowJoin")
    if security not in ("allowJoin", "allowJoinWithLobby", "blockFromJoin"):
        raise WebexApiError(400, INVALID, "unlockedMeetingJoinSecurity is not valid.")
    minutes = body.get("joinBeforeHostMinutes", 0)
    if minutes not in (0, 5, 10, 15):
        raise WebexApiError(400, INVALID, "joinBeforeHostMinutes must be 0, 5, 10 or 15.")
    if series is None:
        return
    series.title, series.agenda, series.start, series.end = title, agenda, start, end
    series.timezone = str(body.get("timezone") or series.timezone)
    for key in ("enabledJoinBeforeHost", "joinBeforeHostMinutes", "enabledAutoRecordMeeting",
                "unlockedMeetingJoinSecurity"):
        if key in body:
            series.options[key] = body[key]


def _integration_tags(value: object) -> list[str]:
    """At most 3 tags of at most 64 characters (the spec's create body)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 3 or not all(isinstance(t, str) and len(t) <= 64 for t in value):
        raise WebexApiError(400, INVALID, "integrationTags holds at most 3 strings of at most 64 characters.")
    return list(value)


def _window(state: WebexState, call: ApiCall) -> tuple[datetime, datetime]:
    """`from`/`to` of List Meetings for series: each defaults to the other -/+ 7 days, or now and now + 7 days."""
    week = timedelta(days=7)
    start = parse_time(call.query["from"], "from") if "from" in call.query else None
    end = parse_time(call.query["to"], "to") if "to" in call.query else None
    if start is None:
        start = end - week if end is not None else state.clock.now()
    if end is None:
        end = start + week
    if end < start:
        raise WebexApiError(400, INVALID, "to cannot be before from.")
    return start, end


def _invitee(state: WebexState, series: Series, item: object) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("email"), str) or "@" not in item["email"]:
        raise WebexApiError(400, INVALID, "Each invitee needs a valid email.")
    # [M] only people with a host account on the site can be cohosts; others are invited as attendees (§3.5).
    person = state.person(item["email"])
    cohost = bool(item.get("coHost")) and person is not None and state.hosts_here(person)
    return {"id": state.hex_id(), "email": item["email"], "displayName": str(item.get("displayName") or item["email"]),
            "coHost": cohost, "meetingId": series.id, "panelist": bool(item.get("panelist"))}


# -- operations ----------------------------------------------------------------------------------------------------


def list_people(state: WebexState, call: ApiCall) -> Answer:
    email = call.query.get("email")
    if not email:
        raise WebexApiError(400, INVALID, "email, displayName or id is required.")  # [L] only email is supported
    person = state.person(email)
    return 200, {"items": [person] if person else []}, {}


def create_meeting(state: WebexState, call: ApiCall) -> Answer:
    body = _object(call)
    host = _host(state, body.get("hostEmail"))
    _schedule(state, body, None)
    number = state.digits(10)
    series = Series(
        id=state.hex_id(), number=number, title=body["title"], agenda=str(body.get("agenda") or ""),
        password=str(body.get("password") or f"Sim{state.digits(5)}"),
        start=parse_time(body["start"], "start"), end=parse_time(body["end"], "end"),
        timezone=str(body.get("timezone") or "UTC"), host=host, host_key=state.digits(6),
        options={"enabledJoinBeforeHost": bool(body.get("enabledJoinBeforeHost", False)),
                 "joinBeforeHostMinutes": body.get("joinBeforeHostMinutes", 0),
                 "enabledAutoRecordMeeting": bool(body.get("enabledAutoRecordMeeting", False)),
                 "unlockedMeetingJoinSecurity": body.get("unlockedMeetingJoinSecurity", "allowJoin")})
    invitees = body.get("invitees") or []
    if not isinstance(invitees, list) or len(invitees) > 1000:
        raise WebexApiError(400, INVALID, "invitees must be a list of at most 1000.")
    series.invitees = [_invitee(state, series, item) for item in invitees]
    series.integration_tags = _integration_tags(body.get("integrationTags"))
    state.meetings[series.id] = series
    return 200, state.meeting_json(series), {}  # 200, not 201 (the spec)


def list_meetings(state: WebexState, call: ApiCall) -> Answer:
    """Series of the host, or (meetingType=meeting with meetingSeriesId) the held instances of one series."""
    kind = call.query.get("meetingType", "meetingSeries")
    if kind not in ("meetingSeries", "scheduledMeeting", "meeting"):
        raise WebexApiError(400, INVALID, "meetingType is not valid.")
    series_id = call.query.get("meetingSeriesId")
    if kind == "meeting":
        if not series_id:
            raise WebexApiError(400, INVALID, "meetingSeriesId is required to list meeting instances.")  # [L]
        series = state.series(series_id)
        wanted = call.query.get("state")
        items = [state.meeting_json(series, i, with_series_id=True) for i in state.listed_instances(series)]
        items = [item for item in items if wanted in (None, item["state"])]
        return _page(call, items)
    host = call.query.get("hostEmail", "").lower()
    tag = call.query.get("integrationTag")
    start, end = _window(state, call)
    # [L] a series is in the window when its first occurrence starts in it (single-occurrence series only here).
    items = [state.meeting_json(s, with_series_id=True) for s in state.meetings.values()
             if not s.deleted and (not host or s.host["emails"][0].lower() == host)
             and (not series_id or s.id == series_id) and (tag is None or tag in s.integration_tags)
             and start <= s.start < end]
    return _page(call, items)


def get_meeting(state: WebexState, call: ApiCall) -> Answer:
    meeting_id = call.path["meetingId"]
    series = state.series(meeting_id)
    if "_I_" in meeting_id:
        return 200, state.meeting_json(series, state.instance(meeting_id)), {}
    return 200, state.meeting_json(series), {}


def patch_meeting(state: WebexState, call: ApiCall) -> Answer:
    meeting_id = call.path["meetingId"]
    series = state.series(meeting_id)
    if "_I_" in meeting_id:
        raise WebexApiError(400, INVALID, "Only a meeting series or a scheduled meeting can be updated.")
    body = _object(call)
    if "hostEmail" in body:
        series.host = _host(state, body["hostEmail"])  # [L] a Service App may move a series to another host
    _schedule(state, body, series)
    return 200, state.meeting_json(series, with_series_id=True), {}


def delete_meeting(state: WebexState, call: ApiCall) -> Answer:
    meeting_id = call.path["meetingId"]
    series = state.series(meeting_id)
    if "_I_" in meeting_id:
        raise WebexApiError(400, INVALID, "Only a meeting series or a scheduled meeting can be deleted.")
    series.deleted = True
    return 204, None, {}


def join_meeting(state: WebexState, call: ApiCall) -> Answer:
    """Personal links (§3.6). Without `joinDirectly: false` Webex answers 302 to the join link."""
    body = _object(call)
    given = [key for key in ("meetingId", "meetingNumber", "webLink") if body.get(key)]
    if len(given) != 1:
        raise WebexApiError(400, INVALID, "Give exactly one of meetingId, meetingNumber and webLink.")
    series = _series_by(state, given[0], str(body[given[0]]))
    minutes = body.get("expirationMinutes", 5)  # [L] the default lifetime is not documented
    if not isinstance(minutes, int) or not 1 <= minutes <= 60:
        raise WebexApiError(400, INVALID, "expirationMinutes must be between 1 and 60.")
    email = str(body.get("email") or series.host["emails"][0])  # no email: the caller's (the host's) identity
    name = str(body.get("displayName") or email)
    expires = state.clock.now() + timedelta(minutes=minutes)
    answer: dict[str, Any] = {"joinLink": _link(state, series, "join", email, name, expires)}
    cohosts = {i["email"].lower() for i in series.invitees if i["coHost"]}
    if email.lower() == series.host["emails"][0].lower() or email.lower() in cohosts:
        answer["startLink"] = _link(state, series, "start", email, name, expires)
    answer["expiration"] = iso(expires)
    if body.get("joinDirectly", True) is not False:
        return 302, None, {"Location": answer["joinLink"]}
    return 200, answer, {}


def _series_by(state: WebexState, key: str, value: str) -> Series:
    if key == "meetingId":
        return state.series(value)
    for series in state.meetings.values():
        if not series.deleted and value in (series.number, state.web_link(series)):
            return series
    raise WebexApiError(404, "The requested resource could not be found.", "Meeting not found.")


def _link(state: WebexState, series: Series, kind: str, email: str, name: str, expires: Any) -> str:
    token = state.hex_id()
    state.links[token] = {"kind": kind, "meeting_id": series.id, "email": email, "display_name": name,
                          "expires": expires}
    return f"{state.base_url}/webex/{kind}/{token}"


def list_participants(state: WebexState, call: ApiCall) -> Answer:
    meeting_id = call.query.get("meetingId")
    if not meeting_id:
        raise WebexApiError(400, INVALID, "meetingId is required.")
    series = state.series(meeting_id)
    instance = state.instance(meeting_id)
    items = [state.participant_json(instance, p, series) for p in instance.participants.values()]
    return _page(call, items)


def add_invitee(state: WebexState, call: ApiCall) -> Answer:
    body = _object(call)
    series = state.series(str(body.get("meetingId") or ""))
    if any(i["email"].lower() == str(body.get("email", "")).lower() for i in series.invitees):
        raise WebexApiError(409, "The request could not be processed because it conflicts with some established "
                                 "rule of the system.", "The invitee is already invited.")  # [L] wording
    invitee = _invitee(state, series, body)
    series.invitees.append(invitee)
    return 200, invitee, {}


API_ENDPOINTS = (
    ApiEndpoint("GET", "/people", list_people),
    ApiEndpoint("POST", "/meetings", create_meeting),
    ApiEndpoint("GET", "/meetings", list_meetings),
    ApiEndpoint("GET", "/meetings/{meetingId}", get_meeting),
    ApiEndpoint("PATCH", "/meetings/{meetingId}", patch_meeting),
    ApiEndpoint("DELETE", "/meetings/{meetingId}", delete_meeting),
    ApiEndpoint("POST", "/meetings/join", join_meeting),
    ApiEndpoint("GET", "/meetingParticipants", list_participants),
    ApiEndpoint("POST", "/meetingInvitees", add_invitee),
)
