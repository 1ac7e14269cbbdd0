"""What each simulated Graph operation does: validation, the state change, the OData JSON it answers.

Handlers are plain functions `(state, call) -> (status, body)` raising `GraphApiError`; `server.py` adds the
token check, throttling and the HTTP around them. Shapes follow docs/providers.md §2.3 and §2.5 (and §2.8's
examples); what the docs leave open is marked [L].
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from viltbridge.providers.teams.simulator.state import (
    Event,
    GraphApiError,
    GraphState,
    Interval,
    Meeting,
    Record,
    Report,
    User,
)

ROLES = ("attendee", "presenter", "coorganizer", "producer")
# createOrGet's documented request body [H]: anything else (meeting options included) is not applied.
CREATE_OR_GET_KEYS = ("subject", "startDateTime", "endDateTime", "participants", "externalId")
OPTION_KEYS = ("lobbyBypassSettings", "allowedPresenters", "allowMeetingChat", "isEntryExitAnnounced",
               "recordAutomatically", "allowRecording", "allowTranscription")


@dataclass(frozen=True)
class ApiCall:
    path: Mapping[str, str]  # path parameters, percent-decoded
    query: Mapping[str, str]
    body: Any
    url_path: str  # the request path as sent, for @odata.nextLink


Reply = tuple[int, Any]
Handler = Callable[[GraphState, ApiCall], Reply]


@dataclass(frozen=True)
class ApiEndpoint:
    method: str
    path: str  # under /v1.0
    handler: Handler


def bad_request(message: str) -> GraphApiError:
    return GraphApiError(400, "BadRequest", message)  # [L] Graph's wording differs per validation


def _time(body: Mapping[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid value for '{key}'.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _context(state: GraphState, suffix: str) -> str:
    return f"{state.base_url}/v1.0/$metadata#{suffix}"


# ---------------------------------------------------------------------------------------------------------------
# JSON shapes


def user_json(state: GraphState, user: User) -> dict[str, Any]:
    return {"@odata.context": _context(state, "users/$entity"), "id": user.id, "userPrincipalName": user.upn,
            "mail": user.mail, "displayName": user.display_name, "accountEnabled": user.enabled}


def _identity(state: GraphState, user_id: str) -> dict[str, Any]:
    return {"user": {"id": user_id, "displayName": None, "tenantId": state.config.tenant_id,
                     "identityProvider": "AAD"}}


def meeting_json(state: GraphState, meeting: Meeting) -> dict[str, Any]:
    options = meeting.options
    return {
        "@odata.context": _context(state, f"users('{meeting.organizer.id}')/onlineMeetings/$entity"),
        "id": meeting.id,
        "creationDateTime": state.stamp(meeting.created),
        "startDateTime": state.stamp(meeting.start),
        "endDateTime": state.stamp(meeting.end),
        "subject": meeting.subject,
        "externalId": meeting.external_id,
        "joinWebUrl": meeting.join_url,
        "videoTeleconferenceId": None,
        "isBroadcast": False,
        "isEntryExitAnnounced": options.get("isEntryExitAnnounced", True),
        "allowedPresenters": options.get("allowedPresenters", "everyone"),
        "allowMeetingChat": options.get("allowMeetingChat", "enabled"),
        "recordAutomatically": options.get("recordAutomatically", False),
        "lobbyBypassSettings": options.get("lobbyBypassSettings",
                                           {"scope": "organization", "isDialInBypassEnabled": False}),
        "joinMeetingIdSettings": {"isPasscodeRequired": True, "joinMeetingId": meeting.join_meeting_id,
                                  "passcode": meeting.passcode},
        "participants": {
            "organizer": {"upn": meeting.organizer.upn, "role": "presenter",
                          "identity": _identity(state, meeting.organizer.id)},
            "attendees": [{"upn": a["upn"], "role": a["role"], "identity": _identity(state, a["id"])}
                          for a in meeting.attendees],
        },
        "chatInfo": {"threadId": meeting.thread_id, "messageId": "0", "replyChainMessageId": None},
        "audioConferencing": None,
        "joinInformation": {"content": "data:text/html,%3cdiv%3eJoin+the+meeting+now%3c%2fdiv%3e",
                            "contentType": "html"},
    }


def report_json(state: GraphState, report: Report) -> dict[str, Any]:
    return {"id": report.id, "totalParticipantCount": len(report.records),
            "meetingStartDateTime": state.stamp(report.started),
            "meetingEndDateTime": state.stamp(report.ended) if report.ended else None,
            "attendanceRecords": []}  # always empty in the list [H]


def _interval_json(state: GraphState, interval: Interval) -> dict[str, Any]:
    left = interval.left or state.now()
    return {"joinDateTime": state.stamp(interval.joined), "leaveDateTime": state.stamp(left),
            "durationInSeconds": int((left - interval.joined).total_seconds())}


def record_json(state: GraphState, record: Record) -> dict[str, Any]:
    intervals = [_interval_json(state, interval) for interval in record.intervals]
    return {"id": record.id, "emailAddress": record.email, "role": record.role,
            "totalAttendanceInSeconds": sum(i["durationInSeconds"] for i in intervals),
            "identity": {"id": record.identity_id, "displayName": record.display_name,
                         "tenantId": record.tenant_id},
            "attendanceIntervals": intervals, "registrationId": None, "externalRegistrationInformation": None}


# ---------------------------------------------------------------------------------------------------------------
# Handlers


def get_user(state: GraphState, call: ApiCall) -> Reply:
    """By object id or userPrincipalName only [H]: a mail address that is not the UPN is a 404."""
    return 200, user_json(state, state.user(call.path["user"]))


# The two filters the user-list documents for finding someone by address [H]; other filters are not simulated.
_MAIL_FILTER = re.compile(r"(?i)mail eq '(?P<value>(?:[^']|'')*)'")
_PROXY_FILTER = re.compile(r"(?i)proxyAddresses/any\((?P<var>\w+):(?P=var) eq '(?P<value>(?:[^']|'')*)'\)")


def list_users(state: GraphState, call: ApiCall) -> Reply:
    """`GET /users?$filter=mail eq '...'` or `proxyAddresses/any(x:x eq 'smtp:...')`: a collection, empty when
    nobody matches (not a 404). Directory string comparisons ignore case [M]."""
    expression = call.query.get("$filter", "")
    people = {user.id: user for user in state.users.values()}.values()
    if match := _MAIL_FILTER.fullmatch(expression):
        wanted = match["value"].replace("''", "'").lower()
        found = [user for user in people if user.mail.lower() == wanted]
    elif match := _PROXY_FILTER.fullmatch(expression):
        wanted = match["value"].replace("''", "'").lower()
        found = [user for user in people if wanted in (address.lower() for address in user.proxy_addresses)]
    elif not expression:
        found = list(people)
    else:
        raise bad_request(f"[simulator] unsupported $filter: {expression}")  # [L]
    return 200, {"@odata.context": _context(state, "users"), "value": [user_json(state, user) for user in found]}


def _organizer(state: GraphState, call: ApiCall, action: str) -> User:
    organizer = state.user(call.path["user"])
    state.require_policy(organizer, action)
    return organizer


def _attendees(state: GraphState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    participants = body.get("participants") or {}
    if not isinstance(participants, dict) or not isinstance(participants.get("attendees", []), list):
        raise bad_request("Invalid value for 'participants'.")
    attendees = []
    for item in participants.get("attendees", []):
        role = str(item.get("role") or "attendee")
        if role not in ROLES:
            raise bad_request(f"Invalid value '{role}' for 'role'.")
        user_id = ((item.get("identity") or {}).get("user") or {}).get("id") or item.get("upn")
        # [L] presenter/coorganizer must be tenant users [H]; Graph's error for an unknown one is a guess.
        user = state.user(str(user_id))
        attendees.append({"id": user.id, "upn": item.get("upn") or user.upn, "role": role})
    return attendees


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in OPTION_KEYS if key in body}


def _create(state: GraphState, organizer: User, body: Mapping[str, Any]) -> Meeting:
    start = _time(body, "startDateTime") or state.now()
    end = _time(body, "endDateTime") or start + timedelta(hours=1)  # [M] Graph's defaults
    if end <= start:
        raise bad_request("endDateTime must be after startDateTime.")
    return state.new_meeting(organizer, subject=str(body.get("subject") or ""), start=start, end=end,
                             attendees=_attendees(state, body), options=_options(body),
                             external_id=body.get("externalId"))


def _body(call: ApiCall) -> dict[str, Any]:
    if call.body is None:
        return {}
    if not isinstance(call.body, dict):
        raise bad_request("Empty Payload. JSON content expected.")
    return call.body


def create_meeting(state: GraphState, call: ApiCall) -> Reply:
    organizer = _organizer(state, call, "Create meeting")
    return 201, meeting_json(state, _create(state, organizer, _body(call)))


def create_or_get_meeting(state: GraphState, call: ApiCall) -> Reply:
    body = _body(call)
    organizer = _organizer(state, call, "Create meeting")
    external_id = body.get("externalId")
    if not external_id:
        raise bad_request("externalId is required.")
    for meeting in state.meetings.values():
        if meeting.organizer.id == organizer.id and meeting.external_id == external_id:
            return 200, meeting_json(state, meeting)  # [M] the existing meeting, unchanged
    # [L] Graph's handling of undocumented properties here is not documented; ignoring them (the meeting gets
    # Teams' defaults) is what a client must be ready for, so options have to be PATCHed afterwards.
    documented = {key: body[key] for key in CREATE_OR_GET_KEYS if key in body}
    return 201, meeting_json(state, _create(state, organizer, documented))


def get_meeting(state: GraphState, call: ApiCall) -> Reply:
    organizer = _organizer(state, call, "Get meeting")
    return 200, meeting_json(state, state.meeting(organizer, call.path["meetingId"]))


def update_meeting(state: GraphState, call: ApiCall) -> Reply:
    organizer = _organizer(state, call, "Update meeting")
    meeting = state.meeting(organizer, call.path["meetingId"])
    body = _body(call)
    if ("startDateTime" in body) != ("endDateTime" in body):
        raise bad_request("Both startDateTime and endDateTime must be specified to update the meeting time.")  # [L]
    if "organizer" in (body.get("participants") or {}):
        raise bad_request("The organizer of a meeting cannot be changed.")  # [L] wording
    start, end = _time(body, "startDateTime"), _time(body, "endDateTime")
    if start is not None and end is not None:
        if end <= start:
            raise bad_request("endDateTime must be after startDateTime.")
        meeting.start, meeting.end = start, end
    if "subject" in body:
        meeting.subject = str(body["subject"] or "")
    if "participants" in body:
        meeting.attendees = _attendees(state, body)  # the full list replaces the old one [H]
    meeting.options.update(_options(body))
    return 200, meeting_json(state, meeting)


def delete_meeting(state: GraphState, call: ApiCall) -> Reply:
    organizer = _organizer(state, call, "Delete meeting")
    meeting = state.meeting(organizer, call.path["meetingId"])
    del state.meetings[meeting.id]
    return 204, None


def list_reports(state: GraphState, call: ApiCall) -> Reply:
    organizer = _organizer(state, call, "Get attendance report")
    meeting = state.meeting(organizer, call.path["meetingId"])
    return 200, {"@odata.context": _context(state, f"users('{organizer.id}')/onlineMeetings('{meeting.id}')/"
                                                   "attendanceReports"),
                 "value": [report_json(state, report) for report in state.reports(meeting)]}


def _report(state: GraphState, call: ApiCall) -> tuple[User, Meeting, Report]:
    organizer = _organizer(state, call, "Get attendance report")
    meeting = state.meeting(organizer, call.path["meetingId"])
    for report in state.reports(meeting):
        if report.id == call.path["reportId"]:
            return organizer, meeting, report
    raise GraphApiError(404, "NotFound", "The attendance report was not found.")  # [L]


def get_report(state: GraphState, call: ApiCall) -> Reply:
    _, _, report = _report(state, call)
    body = report_json(state, report)
    if call.query.get("$expand") == "attendanceRecords":
        body["attendanceRecords"] = [record_json(state, record) for record in report.records.values()]
    return 200, body


def list_records(state: GraphState, call: ApiCall) -> Reply:
    """One page of records; `@odata.nextLink` (an absolute URL with an opaque `$skiptoken`) while more remain."""
    organizer, meeting, report = _report(state, call)
    records = list(report.records.values())
    offset = _skip(call.query.get("$skiptoken"))
    size = state.config.records_page_size
    if call.query.get("$top", "").isdigit():
        size = max(1, min(size, int(call.query["$top"])))
    page = records[offset:offset + size]
    body: dict[str, Any] = {
        "@odata.context": _context(state, f"users('{organizer.id}')/onlineMeetings('{meeting.id}')/"
                                          f"attendanceReports('{report.id}')/attendanceRecords"),
        "value": [record_json(state, record) for record in page]}
    if offset + size < len(records):
        token = base64.urlsafe_b64encode(f"offset={offset + size}".encode()).decode()
        top = f"&$top={call.query['$top']}" if "$top" in call.query else ""
        body["@odata.nextLink"] = f"{state.base_url}{call.url_path}?$skiptoken={token}{top}"
    return 200, body


def _skip(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset="))
    except ValueError:
        raise bad_request("Invalid $skiptoken.") from None


def find_meetings(state: GraphState, call: ApiCall) -> Reply:
    """`$filter=JoinWebUrl eq '{url}'` [H]: the one meeting with that join link (URL-encoded or not), or none."""
    organizer = _organizer(state, call, "Get meeting")
    match = re.fullmatch(r"(?i)JoinWebUrl eq '(?P<url>.*)'", call.query.get("$filter", ""))
    if match is None:
        raise bad_request("Filter expression expected - /onlineMeetings?$filter=JoinWebUrl eq 'joinWebUrl'.")  # [L]
    url = unquote(match["url"].replace("''", "'"))
    found = [m for m in state.meetings.values() if m.organizer.id == organizer.id and unquote(m.join_url) == url]
    return 200, {"@odata.context": _context(state, f"users('{organizer.id}')/onlineMeetings"),
                 "value": [meeting_json(state, meeting) for meeting in found]}


# -- calendar events [M]: no access policy needed (Exchange permissions instead) ---------------------------------


def _event_time(body: Mapping[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise bad_request(f"Invalid value for '{key}'.")
    if value.get("timeZone", "UTC") != "UTC":
        raise bad_request("[simulator] only timeZone UTC is supported")  # [L] real Graph takes Windows/IANA zones
    return _time(value, "dateTime")


def _event_json(state: GraphState, event: Event) -> dict[str, Any]:
    def when(moment: datetime) -> dict[str, str]:
        return {"dateTime": state.stamp(moment).removesuffix("Z"), "timeZone": "UTC"}  # no Z: the zone says it [M]

    return {"@odata.context": _context(state, f"users('{event.organizer.id}')/events/$entity"),
            "@odata.etag": f'W/"{event.id[-8:]}"', "id": event.id,
            "iCalUId": f"040000008200E00074C5B7101A82E008{event.id[5:21]}",
            "subject": event.subject, "body": event.body, "start": when(event.start), "end": when(event.end),
            "attendees": event.attendees, "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness",
            "onlineMeeting": {"joinUrl": event.meeting.join_url}, "transactionId": event.transaction_id,
            "webLink": f"{state.base_url}/owa/?itemid={event.id}"}


def _event_attendees(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    attendees = body.get("attendees") or []
    if not isinstance(attendees, list) or not all(isinstance((a or {}).get("emailAddress"), dict) for a in attendees):
        raise bad_request("Invalid value for 'attendees'.")
    return [{"type": a.get("type", "required"), "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
             "emailAddress": a["emailAddress"]} for a in attendees]


def create_event(state: GraphState, call: ApiCall) -> Reply:
    organizer = state.user(call.path["user"])
    body = _body(call)
    transaction = body.get("transactionId")
    for event in state.events.values():  # [L] a repeated transactionId answers with the first event
        if transaction and event.organizer.id == organizer.id and event.transaction_id == transaction:
            return 201, _event_json(state, event)
    if body.get("isOnlineMeeting") is not True or body.get("onlineMeetingProvider") != "teamsForBusiness":
        raise bad_request("[simulator] only Teams online-meeting events are simulated")
    start, end = _event_time(body, "start"), _event_time(body, "end")
    if start is None or end is None or end <= start:
        raise bad_request("The event's start and end are required, with end after start.")
    meeting = state.new_meeting(organizer, subject=str(body.get("subject") or ""), start=start, end=end,
                                attendees=[], options={}, external_id=None)
    event = Event(id=f"AAMkA{uuid.uuid4().hex}", organizer=organizer, subject=meeting.subject,
                  body=dict(body.get("body") or {"contentType": "text", "content": ""}), start=start, end=end,
                  attendees=_event_attendees(body), meeting=meeting, transaction_id=transaction)
    state.events[event.id] = event
    return 201, _event_json(state, event)


def get_event(state: GraphState, call: ApiCall) -> Reply:
    return 200, _event_json(state, state.event(state.user(call.path["user"]), call.path["eventId"]))


def update_event(state: GraphState, call: ApiCall) -> Reply:
    event = state.event(state.user(call.path["user"]), call.path["eventId"])
    body = _body(call)
    start, end = _event_time(body, "start") or event.start, _event_time(body, "end") or event.end
    if end <= start:
        raise bad_request("The event's end must be after its start.")
    event.start = event.meeting.start = start  # the Teams meeting follows its event [M]
    event.end = event.meeting.end = end
    if "subject" in body:
        event.subject = event.meeting.subject = str(body["subject"] or "")
    if "body" in body:
        event.body = dict(body["body"] or {})
    if "attendees" in body:
        event.attendees = _event_attendees(body)
    return 200, _event_json(state, event)


def cancel_event(state: GraphState, call: ApiCall) -> Reply:
    """202 [M]; the event and its Teams meeting are gone (attendees would get the comment by mail)."""
    event = state.event(state.user(call.path["user"]), call.path["eventId"])
    del state.events[event.id]
    state.meetings.pop(event.meeting.id, None)
    return 202, None


MEETING = "/users/{user}/onlineMeetings/{meetingId}"
EVENT = "/users/{user}/events/{eventId}"
API_ENDPOINTS = (
    ApiEndpoint("GET", "/users", list_users),
    ApiEndpoint("GET", "/users/{user}", get_user),
    ApiEndpoint("POST", "/users/{user}/onlineMeetings", create_meeting),
    ApiEndpoint("GET", "/users/{user}/onlineMeetings", find_meetings),
    ApiEndpoint("POST", "/users/{user}/onlineMeetings/createOrGet", create_or_get_meeting),
    ApiEndpoint("GET", MEETING, get_meeting),
    ApiEndpoint("PATCH", MEETING, update_meeting),
    ApiEndpoint("DELETE", MEETING, delete_meeting),
    ApiEndpoint("GET", MEETING + "/attendanceReports", list_reports),
    ApiEndpoint("GET", MEETING + "/attendanceReports/{reportId}", get_report),
    ApiEndpoint("GET", MEETING + "/attendanceReports/{reportId}/attendanceRecords", list_records),
    ApiEndpoint("POST", "/users/{user}/events", create_event),
    ApiEndpoint("GET", EVENT, get_event),
    ApiEndpoint("PATCH", EVENT, update_event),
    ApiEndpoint("POST", EVENT + "/cancel", cancel_event),
)
