"""What each simulated Zoom API operation does: validation, the state change, the JSON it answers.

Handlers are plain functions `(state, call) -> (status, body)` raising `ZoomApiError` for Zoom's error bodies; the
HTTP layer in `server.py` adds auth, scopes, rate limits and faults around them. Field names, types and status
codes come from the official Meetings OpenAPI document; where it and docs/providers.md disagree the spec wins, and
the code says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from viltbridge.providers.zoom.simulator.state import (
    HEAVY,
    LIGHT,
    MEDIUM,
    Instance,
    Meeting,
    Registrant,
    Segment,
    User,
    ZoomApiError,
    ZoomState,
    iso,
    meeting_not_found,
    validation_failed,
)

# ---------------------------------------------------------------------------------------------------------------
# Request plumbing


@dataclass(frozen=True)
class ApiCall:
    path: Mapping[str, str]  # path parameters, percent-decoded once
    query: Mapping[str, str]
    body: Any  # the parsed JSON body, or None when there was none


Reply = tuple[int, Any]  # status, JSON body (None for 204)
Handler = Callable[[ZoomState, ApiCall], Reply]


@dataclass(frozen=True)
class ApiEndpoint:
    method: str
    path: str  # exactly as in the OpenAPI document (without the /v2 server prefix)
    handler: Handler
    category: str  # rate-limit label from the spec: Light, Medium or Heavy
    scopes: tuple[str, ...]  # any one grants access: classic admin scope, granular admin scope


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ZoomApiError(400, 300, "Request Body should be a valid JSON object.")
    return body


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value) or len(value) > 128:
        raise validation_failed(field_name)
    return value


def _text(body: Mapping[str, Any], key: str, limit: int, field_name: str | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise validation_failed(field_name or key, f"{key} must be a string of at most {limit} characters.")
    return value


def _int_choice(value: Any, choices: tuple[int, ...], field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in choices:
        raise validation_failed(field_name)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Users (Zoom's Users API: not part of the Meetings OpenAPI document; shapes from providers.md §1.4)


def get_user(state: ZoomState, call: ApiCall) -> Reply:
    return 200, state.get_user(call.path["userId"]).as_json(state.config.account_id)


def create_user(state: ZoomState, call: ApiCall) -> Reply:
    body = _object(call.body)
    action = body.get("action")
    if action not in ("create", "autoCreate", "custCreate", "ssoCreate"):
        raise validation_failed("action")
    info = body.get("user_info")
    if not isinstance(info, dict):
        raise validation_failed("user_info")
    email = _email(info.get("email"), "user_info.email")
    user_type = _int_choice(info.get("type", 1), (1, 2, 4, 99), "user_info.type")
    first = _text(info, "first_name", 64, "user_info.first_name") or ""
    last = _text(info, "last_name", 64, "user_info.last_name") or ""
    if state.find_user(email) is not None:
        # [M] mod_zoom matches this message text to detect "already exists".
        raise ZoomApiError(409, 1005, f"User already in the account: {email}")
    # `create` mails an activation link: the user stays pending until they accept it.
    user = state.add_user(email, type=user_type, status="pending" if action == "create" else "active",
                          first_name=first, last_name=last, cust_create=action == "custCreate")
    return 201, {"id": user.id, "first_name": user.first_name, "last_name": user.last_name, "email": user.email,
                 "type": user.type}


def update_user(state: ZoomState, call: ApiCall) -> Reply:
    user = state.get_user(call.path["userId"])
    body = _object(call.body)
    first = _text(body, "first_name", 64)
    last = _text(body, "last_name", 64)
    user_type = _int_choice(body["type"], (1, 2, 4, 99), "type") if "type" in body else None
    zone = _zone(body["timezone"]) if "timezone" in body else None
    dept = _text(body, "dept", 100)
    user.first_name = user.first_name if first is None else first
    user.last_name = user.last_name if last is None else last
    user.type = user.type if user_type is None else user_type
    user.timezone = zone or user.timezone
    user.dept = user.dept if dept is None else dept
    return 204, None


def update_user_status(state: ZoomState, call: ApiCall) -> Reply:
    """`PUT /users/{userId}/status` (Users API): `activate` or `deactivate`; a pending user cannot be either."""
    user = state.get_user(call.path["userId"])
    action = _object(call.body).get("action")
    if action not in ("activate", "deactivate"):
        raise validation_failed("action")
    if user.status == "pending":  # [L] the code Zoom uses here is not documented
        raise ZoomApiError(400, 1001, f"User {user.email} has not accepted the invitation yet.")
    user.status = "active" if action == "activate" else "inactive"
    return 204, None


# ---------------------------------------------------------------------------------------------------------------
# Meetings

MEETING_TYPES = (1, 2, 3, 8, 10)

# The settings the simulator keeps and echoes, with Zoom's defaults. All are properties of the spec's meeting
# `settings` object; anything else a client sends is ignored, as Zoom ignores unknown fields.
SETTINGS_DEFAULTS: dict[str, Any] = {
    "host_video": False, "participant_video": False, "cn_meeting": False, "in_meeting": False,
    "join_before_host": False, "jbh_time": 0, "mute_upon_entry": False, "watermark": False, "use_pmi": False,
    "approval_type": 2, "registration_type": 1, "audio": "both", "auto_recording": "none", "enforce_login": False,
    "enforce_login_domains": "", "alternative_hosts": "", "alternative_hosts_email_notification": True,
    "close_registration": False, "show_share_button": False, "allow_multiple_devices": False,
    "registrants_confirmation_email": True, "waiting_room": False, "registrants_email_notification": True,
    "meeting_authentication": False, "encryption_type": "enhanced_encryption", "device_testing": False,
    "focus_mode": False, "private_meeting": False, "email_notification": True, "host_save_video_order": False,
    "participant_focused_meeting": False, "push_change_to_calendar": False, "email_in_attendee_report": False,
    "internal_meeting": False, "alternative_host_update_polls": False, "disable_participant_video": False,
}
SETTINGS_CHOICES: dict[str, tuple[Any, ...]] = {
    "approval_type": (0, 1, 2), "registration_type": (1, 2, 3), "jbh_time": (0, 5, 10, 15),
    "audio": ("both", "telephony", "voip", "thirdParty"), "auto_recording": ("local", "cloud", "none"),
    "encryption_type": ("enhanced_encryption", "e2ee"),
}
RECURRENCE_FIELDS = ("type", "repeat_interval", "weekly_days", "monthly_day", "monthly_week", "monthly_week_day",
                     "end_times", "end_date_time")
_PASSCODE = re.compile(r"^[A-Za-z0-9@\-_*]{1,10}$")  # ≤10 per the spec; the character set is Zoom's [M]


def _zone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise validation_failed("timezone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise validation_failed("timezone") from None
    return value


def _start_time(value: Any, zone: str) -> datetime:
    """`yyyy-MM-ddTHH:mm:ssZ` is UTC; without the Z it is local time in `timezone` (Zoom's two forms)."""
    if not isinstance(value, str):
        raise validation_failed("start_time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation_failed("start_time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


def _can_host(state: ZoomState, user: User, *, licence_required: bool = False) -> None:
    licensed = user.type == 2 or (user.type == 1 and state.config.basic_hosts_allowed and not licence_required)
    if not licensed or user.status != "active":  # [L] inactive/pending users answered like unlicensed ones
        raise ZoomApiError(400, 3161, "Your user account is not allowed meeting hosting and scheduling "
                                      "capabilities.")


def _alternative_hosts(state: ZoomState, value: Any, host: User) -> str:
    """Semicolon- (or comma-) separated emails or ids; each must be a licensed active user on this account.

    [L] Zoom refuses others (support article KB0082130) but the exact error code is not documented: 300 here.
    """
    if not isinstance(value, str):
        raise validation_failed("settings.alternative_hosts")
    emails: list[str] = []
    for entry in filter(None, (part.strip() for part in re.split(r"[;,]", value))):
        user = state.find_user(entry)
        if user is None or user.type != 2 or user.status != "active":
            raise ZoomApiError(400, 300, f"Alternative host {entry} must be a licensed user on this account.")
        if user.id != host.id and user.email not in emails:
            emails.append(user.email)
    return ";".join(emails)


def _settings(state: ZoomState, value: Any, host: User) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise validation_failed("settings")
    clean: dict[str, Any] = {}
    for key, item in value.items():
        if key == "alternative_hosts":
            clean[key] = _alternative_hosts(state, item, host)
        elif key in SETTINGS_CHOICES:
            if item not in SETTINGS_CHOICES[key] or isinstance(item, bool):
                raise validation_failed(f"settings.{key}")
            clean[key] = item
        elif key in SETTINGS_DEFAULTS:
            if type(item) is not type(SETTINGS_DEFAULTS[key]):
                raise validation_failed(f"settings.{key}")
            clean[key] = item
    return clean


@dataclass
class MeetingFields:
    """A create/update body, validated. None = not given."""

    topic: str | None = None
    type: int | None = None
    start_time: datetime | None = None
    duration: int | None = None
    timezone: str | None = None
    agenda: str | None = None
    password: str | None = None
    settings: dict[str, Any] | None = None
    recurrence: dict[str, Any] | None = None
    tracking_fields: list[dict[str, str]] | None = None
    host: User | None = None  # from schedule_for


def _meeting_fields(state: ZoomState, body: dict[str, Any], host: User, current: Meeting | None) -> MeetingFields:
    fields = MeetingFields()
    fields.topic = _text(body, "topic", 200)
    if "type" in body:
        fields.type = _int_choice(body["type"], MEETING_TYPES, "type")
    if body.get("schedule_for") is not None:
        if (fields.type or (current.type if current else 2)) == 1:
            raise ZoomApiError(400, 3000, "Instant meetings do not support the `schedule_for` parameter, and you "
                                          "can't schedule an instant meeting for another user.")
        target = state.find_user(str(body["schedule_for"]))
        if target is None:
            raise ZoomApiError(400, 300, "The value that you entered in the `schedule_for` field is invalid. Enter "
                                         "a valid value and try again.")
        fields.host = target
    owner = fields.host or host
    if "timezone" in body:
        fields.timezone = _zone(body["timezone"])
    zone = fields.timezone or (current.timezone if current else owner.timezone)
    if body.get("start_time") is not None:
        fields.start_time = _start_time(body["start_time"], zone)
    if "duration" in body:
        duration = body["duration"]
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise validation_failed("duration")
        fields.duration = duration
    fields.agenda = _text(body, "agenda", 2000)
    if body.get("password") is not None:
        password = body["password"]
        if not isinstance(password, str) or not _PASSCODE.match(password):
            raise validation_failed("password", "Passcode must be at most 10 characters: letters, digits, @ - _ *.")
        fields.password = password
    if body.get("settings") is not None:
        fields.settings = _settings(state, body["settings"], owner)
    if body.get("recurrence") is not None:
        recurrence = body["recurrence"]
        if not isinstance(recurrence, dict) or recurrence.get("type") not in (1, 2, 3):
            raise validation_failed("recurrence.type")
        end_times = recurrence.get("end_times", 1)
        if isinstance(end_times, bool) or not isinstance(end_times, int) or not 1 <= end_times <= 60:
            raise validation_failed("recurrence.end_times")
        # Kept and echoed as given (the spec's fields only); occurrences are not generated.
        fields.recurrence = {k: v for k, v in recurrence.items() if k in RECURRENCE_FIELDS}
    if body.get("tracking_fields") is not None:
        fields.tracking_fields = _tracking_fields(state, body["tracking_fields"])
    return fields


def _tracking_fields(state: ZoomState, value: Any) -> list[dict[str, str]]:
    """`tracking_fields` [{field (required), value}] of a create or update body, keeping only the labels the
    account defines (SimConfig.tracking_fields)."""
    if not isinstance(value, list):
        raise validation_failed("tracking_fields")
    defined = state.config.tracking_fields
    kept: list[dict[str, str]] = []
    for n, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("field"), str) or not item["field"]:
            raise validation_failed(f"tracking_fields[{n}].field")
        if not isinstance(item.get("value", ""), str):
            raise validation_failed(f"tracking_fields[{n}].value")
        if defined is None or item["field"] in defined:
            kept.append({"field": item["field"], "value": item.get("value", "")})
    return kept


def _tracking_fields_json(state: ZoomState, meeting: Meeting) -> list[dict[str, Any]]:
    """As the create and GET responses show them: with `visible`, the account's setting for that label."""
    defined = state.config.tracking_fields
    return [{"field": item["field"], "value": item["value"],
             "visible": True if defined is None else defined.get(item["field"], True)}
            for item in meeting.tracking_fields]


def meeting_json(state: ZoomState, meeting: Meeting) -> dict[str, Any]:
    host = state.host_of(meeting)
    live = meeting.live_instance
    body: dict[str, Any] = {
        "uuid": live.uuid if live else meeting.next_uuid, "id": meeting.id, "host_id": meeting.host_id,
        "host_email": host.email, "topic": meeting.topic, "type": meeting.type,
        "status": "started" if live else "waiting",
    }
    if meeting.type != 3:  # "recurring with no fixed time" has no start time
        body["start_time"] = iso(meeting.start_time)
    body.update({
        "duration": meeting.duration, "timezone": meeting.timezone, "agenda": meeting.agenda,
        "created_at": iso(meeting.created_at), "start_url": state.start_url(meeting),
        "join_url": state.join_url(meeting), "password": meeting.password,
        "h323_password": meeting.h323_password, "pstn_password": meeting.h323_password,
        "encrypted_password": meeting.encrypted_password, "pre_schedule": False, "creation_source": "open_api",
        "settings": {**SETTINGS_DEFAULTS, **meeting.settings,
                     "contact_name": f"{host.first_name} {host.last_name}".strip(), "contact_email": host.email},
    })
    if meeting.registration_enabled:
        # Not in the spec's GET schema (only in the create response), but Zoom returns it on GET too [M], and after
        # a 204 PATCH that turned registration on, a GET is the only way to learn it.
        body["registration_url"] = state.registration_url(meeting)
    if meeting.recurrence is not None:
        body["recurrence"] = meeting.recurrence
    if meeting.tracking_fields:  # in the create and GET schemas; the list of a host's meetings has none
        body["tracking_fields"] = _tracking_fields_json(state, meeting)
    return body


def _charge_host(state: ZoomState, host: User, category: str) -> None:
    if state.config.enforce_rate_limits:
        state.limiter.charge_host(host.id, category, state.clock.now())


def create_meeting(state: ZoomState, call: ApiCall) -> Reply:
    requester = state.get_user(call.path["userId"])
    fields = _meeting_fields(state, _object(call.body), requester, None)
    host = fields.host or requester
    _can_host(state, host)
    _charge_host(state, host, MEDIUM)
    now = state.clock.now()
    meeting_type = fields.type or 2
    password = fields.password or state.new_passcode()
    meeting = Meeting(
        id=state.new_meeting_id(), host_id=host.id, topic=fields.topic or "Zoom Meeting", type=meeting_type,
        start_time=now if meeting_type == 1 or fields.start_time is None else fields.start_time,
        duration=60 if fields.duration is None else fields.duration, timezone=fields.timezone or host.timezone,
        agenda=fields.agenda or "", password=password, encrypted_password=state.new_token(24),
        h323_password=str(state.new_digits(6)), settings=fields.settings or {}, created_at=now,
        next_uuid=state.new_uuid(), registration_token=state.new_token(18), recurrence=fields.recurrence,
        tracking_fields=fields.tracking_fields or [])
    state.meetings[meeting.id] = meeting
    return 201, meeting_json(state, meeting)


def get_meeting(state: ZoomState, call: ApiCall) -> Reply:
    return 200, meeting_json(state, state.get_meeting(call.path["meetingId"]))  # a fresh start_url every time


def update_meeting(state: ZoomState, call: ApiCall) -> Reply:
    meeting = state.get_meeting(call.path["meetingId"])
    fields = _meeting_fields(state, _object(call.body), state.host_of(meeting), meeting)
    host = fields.host or state.host_of(meeting)
    _can_host(state, host)  # a host who lost their licence can no longer have meetings updated
    _charge_host(state, host, LIGHT)
    meeting.host_id = host.id
    meeting.topic = meeting.topic if fields.topic is None else fields.topic
    meeting.type = fields.type or meeting.type
    meeting.start_time = fields.start_time or meeting.start_time
    meeting.duration = meeting.duration if fields.duration is None else fields.duration
    meeting.timezone = fields.timezone or meeting.timezone
    meeting.agenda = meeting.agenda if fields.agenda is None else fields.agenda
    if fields.password is not None and fields.password != meeting.password:
        # The join_url survives edits; only a new passcode changes the `pwd` it carries, as on Zoom.
        meeting.password = fields.password
        meeting.encrypted_password = state.new_token(24)
    if fields.settings:
        meeting.settings.update(fields.settings)
    if fields.recurrence is not None:
        meeting.recurrence = fields.recurrence
    if fields.tracking_fields is not None:  # [L] the list given replaces the meeting's, like other arrays
        meeting.tracking_fields = fields.tracking_fields
    return 204, None


def delete_meeting(state: ZoomState, call: ApiCall) -> Reply:
    meeting = state.get_meeting(call.path["meetingId"])
    if meeting.live_instance is not None:  # [M] older docs: code 3002
        raise ZoomApiError(400, 3002, "Sorry, you cannot delete this meeting since it is in progress.")
    meeting.deleted_at = state.clock.now()
    return 204, None


def meeting_status(state: ZoomState, call: ApiCall) -> Reply:
    body = _object(call.body)
    action = body.get("action")
    if action not in ("end", "recover"):
        raise validation_failed("action")
    meeting = state.get_meeting(call.path["meetingId"], include_deleted=action == "recover")
    if action == "end":
        state.end_instance(meeting, state.clock.now())  # webhooks go out after the response
    elif meeting.deleted_at is not None:
        if state.clock.now() - meeting.deleted_at > timedelta(days=7):  # Zoom keeps deleted meetings 7 days
            raise meeting_not_found(meeting.id)
        meeting.deleted_at = None
    return 204, None


def list_meetings(state: ZoomState, call: ApiCall) -> Reply:
    host = state.get_user(call.path["userId"])
    kind = call.query.get("type", "scheduled")
    now = state.clock.now()
    months = timedelta(days=183)  # the spec: upcoming and previous listings return at most 6 months of meetings

    def upcoming(m: Meeting) -> bool:
        return m.live_instance is not None or now <= m.start_time <= now + months  # "including live meetings"

    wanted: dict[str, Callable[[Meeting], bool]] = {
        "scheduled": lambda m: m.type != 1,
        "live": lambda m: m.live_instance is not None,
        "upcoming": upcoming,
        "upcoming_meetings": upcoming,
        "previous_meetings": lambda m: any(not i.live and i.start_time >= now - months for i in m.instances),
    }
    if kind not in wanted:
        raise validation_failed("type")
    rows = sorted((m for m in state.meetings.values()
                   if m.host_id == host.id and m.deleted_at is None and wanted[kind](m)),
                  key=lambda m: (m.start_time, m.id))
    chunk, meta, number = _page(state, f"meetings:{host.id}:{kind}", rows, call.query)
    items = [{"uuid": (m.live_instance.uuid if m.live_instance else m.next_uuid), "id": m.id,
              "host_id": m.host_id, "topic": m.topic, "type": m.type, "start_time": iso(m.start_time),
              "duration": m.duration, "timezone": m.timezone, "agenda": m.agenda, "created_at": iso(m.created_at),
              "join_url": state.join_url(m)} for m in chunk]
    return 200, {**meta, "page_number": number, "meetings": items}


def _page(state: ZoomState, listing: str, rows: list[Any], query: Mapping[str, str],
          ) -> tuple[list[Any], dict[str, Any], int]:
    chunk, meta = state.page(listing, rows, query.get("page_size"), query.get("next_page_token"))
    number = 1 + (rows.index(chunk[0]) // meta["page_size"] if chunk else 0)
    return chunk, meta, number


# ---------------------------------------------------------------------------------------------------------------
# Registrants

# Registration questions kept and listed back. (`language` is accepted on create but is not a field of the
# spec's registrant list item, so it is not echoed.)
REGISTRANT_EXTRA_FIELDS = (
    "address", "city", "state", "zip", "country", "phone", "comments", "industry", "job_title", "org",
    "no_of_employees", "purchasing_time_frame", "role_in_purchase_process", "custom_questions",
)
MAX_REGISTRANTS = 4999


def _registration_meeting(state: ZoomState, meeting_id: str, *, licence_required: bool = True,
                          not_found: Callable[[object], ZoomApiError] = meeting_not_found) -> Meeting:
    meeting = state.get_meeting(meeting_id, not_found=not_found)
    if not meeting.registration_enabled:
        # Documented on batch_registrants: HTTP 400 with Zoom code 404. Registration needs approval_type 0 or 1.
        raise ZoomApiError(400, 404, f"Registration has not been enabled for this meeting: {meeting.id}.")
    if licence_required:
        _can_host(state, state.host_of(meeting), licence_required=True)  # "host must be a Licensed user"
    return meeting


def _person(person: Mapping[str, Any], field_prefix: str = "") -> tuple[str, str, str]:
    email = _email(person.get("email"), f"{field_prefix}email")
    first = _text(person, "first_name", 64, f"{field_prefix}first_name")
    if not first:
        raise validation_failed(f"{field_prefix}first_name")
    return email, first, _text(person, "last_name", 64, f"{field_prefix}last_name") or ""


def register(state: ZoomState, meeting: Meeting, person: Mapping[str, Any], auto_approve: bool) -> Registrant:
    email, first, last = _person(person)
    existing = next((r for r in meeting.registrants.values() if r.email.lower() == email.lower()), None)
    if existing is not None:
        return existing  # registering the same email again hands back the same registrant and link [M]
    if len(meeting.registrants) >= MAX_REGISTRANTS:
        raise ZoomApiError(400, 3043, "Meeting has reached maximum attendee capacity.")
    approved = auto_approve or meeting.settings.get("approval_type") == 0
    registrant = Registrant(
        id=state.new_id(), email=email, first_name=first, last_name=last,
        status="approved" if approved else "pending", create_time=state.clock.now(), token=state.new_token(30),
        pin=state.new_digits(6), extra={k: person[k] for k in REGISTRANT_EXTRA_FIELDS if person.get(k) is not None})
    meeting.registrants[registrant.id] = registrant
    return registrant


def add_registrant(state: ZoomState, call: ApiCall) -> Reply:
    # The spec documents Zoom code 1001 (not 3001) for "Meeting does not exist" on this route.
    meeting = _registration_meeting(
        state, call.path["meetingId"], not_found=lambda mid: ZoomApiError(404, 1001, f"Meeting does not exist: {mid}."))
    body = _object(call.body)
    registrant = register(state, meeting, body, bool(body.get("auto_approve")))
    reply: dict[str, Any] = {"id": meeting.id, "registrant_id": registrant.id, "topic": meeting.topic,
                             "start_time": iso(meeting.start_time), "participant_pin_code": registrant.pin}
    if registrant.status == "approved":  # no personal link while manual approval is pending
        reply["join_url"] = state.registrant_join_url(meeting, registrant)
    return 201, reply


def batch_registrants(state: ZoomState, call: ApiCall) -> Reply:
    meeting = _registration_meeting(state, call.path["meetingId"])
    if meeting.type != 2:
        raise ZoomApiError(400, 303, "This API can only be used for scheduled meeting(meeting type: 2). Batch "
                                     "registration is not supported for other meeting types.")
    body = _object(call.body)
    people = body.get("registrants")
    if not isinstance(people, list) or not people or not all(isinstance(p, dict) for p in people):
        raise validation_failed("registrants")
    if len(people) > 30:
        raise validation_failed("registrants", "At most 30 registrants per request.")
    for n, person in enumerate(people):  # all or nothing: check everyone before registering anyone
        _person(person, f"registrants[{n}].")
    auto_approve = bool(body.get("auto_approve"))
    done = [register(state, meeting, person, auto_approve) for person in people]
    rows = []
    for registrant in done:
        row: dict[str, Any] = {"registrant_id": registrant.id, "email": registrant.email,
                               "participant_pin_code": registrant.pin}
        if registrant.status == "approved":
            row["join_url"] = state.registrant_join_url(meeting, registrant)
        rows.append(row)
    # The spec lists this success under "201" (its text says 200 OK); the simulator answers 201 like the key.
    return 201, {"registrants": rows}


def registrant_json(state: ZoomState, meeting: Meeting, registrant: Registrant) -> dict[str, Any]:
    row: dict[str, Any] = {"id": registrant.id, "email": registrant.email, "first_name": registrant.first_name,
                           "last_name": registrant.last_name, **registrant.extra, "status": registrant.status,
                           "create_time": iso(registrant.create_time), "participant_pin_code": registrant.pin}
    if registrant.status == "approved":
        row["join_url"] = state.registrant_join_url(meeting, registrant)
    return row


def list_registrants(state: ZoomState, call: ApiCall) -> Reply:
    meeting = _registration_meeting(state, call.path["meetingId"], licence_required=False)
    status = call.query.get("status", "approved")
    if status not in ("approved", "pending", "denied"):
        raise validation_failed("status")
    rows = [r for r in meeting.registrants.values() if r.status == status]
    chunk, meta, number = _page(state, f"registrants:{meeting.id}:{status}", rows, call.query)
    return 200, {**meta, "page_number": number,
                 "registrants": [registrant_json(state, meeting, r) for r in chunk]}


def registrant_status(state: ZoomState, call: ApiCall) -> Reply:
    meeting = _registration_meeting(state, call.path["meetingId"], licence_required=False)
    body = _object(call.body)
    action = body.get("action")
    if action not in ("approve", "cancel", "deny"):
        raise validation_failed("action")
    people = body.get("registrants")
    if not isinstance(people, list) or len(people) > 30 or not all(isinstance(p, dict) for p in people):
        raise validation_failed("registrants")
    # [L] a cancelled registration is listed with the denied ones (the list filter has no "cancelled").
    new_status = {"approve": "approved", "cancel": "denied", "deny": "denied"}[action]
    for person in people:
        for registrant in meeting.registrants.values():
            if person.get("id") == registrant.id or (
                    person.get("email") and str(person["email"]).lower() == registrant.email.lower()):
                registrant.status = new_status
    return 204, None


def delete_registrant(state: ZoomState, call: ApiCall) -> Reply:
    meeting = _registration_meeting(state, call.path["meetingId"], licence_required=False)
    if meeting.registrants.pop(call.path["registrantId"], None) is None:
        raise ZoomApiError(400, 300, "The value that you entered for the Registrant ID field is invalid. Enter a "
                                     "valid value and try again.")
    return 204, None


# ---------------------------------------------------------------------------------------------------------------
# Past meetings and reports


def _instance_for(state: ZoomState, raw: str, not_found: Callable[[object], ZoomApiError],
                  ) -> tuple[Meeting, Instance]:
    """A meeting number (→ its latest ended instance) or an instance UUID.

    Routing sees the raw path, so `raw` here has been decoded once. A UUID that starts with "/" or contains "//"
    must be double-encoded (Zoom's rule): decoded once it must still be encoded; one that shows a bare "/" at the
    start or "//" was encoded only once and does not resolve, as on Zoom.
    """
    if raw.startswith("/") or "//" in raw:
        raise not_found(raw)
    value = unquote(raw) if "%" in raw else raw
    if value.isdigit():
        meeting = state.get_meeting(value, include_deleted=True, not_found=not_found)
        ended = [inst for inst in meeting.instances if not inst.live]
        if not ended:
            raise not_found(raw)
        return meeting, ended[-1]
    found = state.find_instance(value)
    if found is None or found[1].live:
        raise not_found(raw)
    return found


def _too_old(state: ZoomState, start: datetime, message: str) -> None:
    if state.clock.now() - start > timedelta(days=365):
        raise ZoomApiError(400, 12702, message)


def _segments(inst: Instance) -> list[Segment]:
    return sorted(inst.segments, key=lambda s: (s.join_time, int(s.participant_id)))


def _seconds(seg: Segment, processed: bool) -> int:
    if not processed or seg.leave_time is None:
        return 0  # Zoom: "a duration of 0 means the data is not processed yet; retry later"
    return int((seg.leave_time - seg.join_time).total_seconds())


def report_participants(state: ZoomState, call: ApiCall) -> Reply:
    if not state.limiter.plan.paid:
        raise ZoomApiError(400, 200, f"Only available for Paid or ZMP account: {state.config.account_id}.")
    _, inst = _instance_for(state, call.path["meetingId"], lambda mid: ZoomApiError(
        404, 3001, f"Meeting {mid} not found or has expired."))
    _too_old(state, inst.start_time, "Can not access meeting a year ago.")
    include = call.query.get("include_fields")
    if include not in (None, "", "registrant_id"):
        raise validation_failed("include_fields")
    rows = _segments(inst)
    chunk, meta, _ = _page(state, f"report:{inst.uuid}", rows, call.query)
    items = []
    for seg in chunk:
        row: dict[str, Any] = {
            "id": seg.zoom_user_id, "user_id": seg.participant_id, "name": seg.name, "user_email": seg.email,
            "join_time": iso(seg.join_time), "leave_time": iso(seg.leave_time or seg.join_time),
            "duration": _seconds(seg, inst.processed), "failover": False, "status": seg.status,
            "participant_user_id": seg.zoom_user_id,
        }
        if include == "registrant_id":  # registrant_id only comes back when asked for
            row["registrant_id"] = seg.registrant_id
        if seg.customer_key:
            row["customer_key"] = seg.customer_key
        items.append(row)
    return 200, {**meta, "participants": items}


def past_participants(state: ZoomState, call: ApiCall) -> Reply:
    if not state.limiter.plan.paid:
        raise ZoomApiError(400, 200, f"Only available for paid account: {state.config.account_id}")
    _, inst = _instance_for(state, call.path["meetingId"], meeting_not_found)
    _too_old(state, inst.start_time, "Can not access a meeting a year ago.")
    rows = _segments(inst)
    chunk, meta, _ = _page(state, f"past:{inst.uuid}", rows, call.query)
    items = [{"id": seg.zoom_user_id, "name": seg.name, "user_id": seg.participant_id, "user_email": seg.email,
              "join_time": iso(seg.join_time), "leave_time": iso(seg.leave_time or seg.join_time),
              "duration": _seconds(seg, inst.processed), "failover": False, "status": seg.status,
              "internal_user": bool(seg.zoom_user_id), "registrant_id": seg.registrant_id} for seg in chunk]
    return 200, {**meta, "participants": items}


def past_instances(state: ZoomState, call: ApiCall) -> Reply:
    meeting = state.get_meeting(call.path["meetingId"], include_deleted=True)
    horizon = state.clock.now() - timedelta(days=456)  # "instances older than 15 months are not returned"
    return 200, {"meetings": [{"uuid": inst.uuid, "start_time": iso(inst.start_time)}
                              for inst in meeting.instances if not inst.live and inst.start_time >= horizon]}


# ---------------------------------------------------------------------------------------------------------------
# Route table. Categories and scopes as the spec labels each operation.

_MEETING_READ = ("meeting:read:admin", "meeting:read:meeting:admin")

API_ENDPOINTS: tuple[ApiEndpoint, ...] = (
    ApiEndpoint("GET", "/users/{userId}", get_user, LIGHT, ("user:read:admin", "user:read:user:admin")),
    ApiEndpoint("POST", "/users", create_user, MEDIUM, ("user:write:admin", "user:write:user:admin")),
    ApiEndpoint("PATCH", "/users/{userId}", update_user, LIGHT, ("user:write:admin", "user:update:user:admin")),
    ApiEndpoint("PUT", "/users/{userId}/status", update_user_status, LIGHT,
                ("user:write:admin", "user:update:status:admin")),
    ApiEndpoint("POST", "/users/{userId}/meetings", create_meeting, MEDIUM,
                ("meeting:write:admin", "meeting:write:meeting:admin")),
    ApiEndpoint("GET", "/users/{userId}/meetings", list_meetings, MEDIUM,
                ("meeting:read:admin", "meeting:read:list_meetings:admin")),
    ApiEndpoint("GET", "/meetings/{meetingId}", get_meeting, LIGHT, _MEETING_READ),
    ApiEndpoint("PATCH", "/meetings/{meetingId}", update_meeting, LIGHT,
                ("meeting:write:admin", "meeting:update:meeting:admin")),
    ApiEndpoint("DELETE", "/meetings/{meetingId}", delete_meeting, LIGHT,
                ("meeting:write:admin", "meeting:delete:meeting:admin")),
    ApiEndpoint("PUT", "/meetings/{meetingId}/status", meeting_status, LIGHT,
                ("meeting:write:admin", "meeting:update:status:admin")),
    ApiEndpoint("POST", "/meetings/{meetingId}/registrants", add_registrant, LIGHT,
                ("meeting:write:admin", "meeting:write:registrant:admin")),
    ApiEndpoint("GET", "/meetings/{meetingId}/registrants", list_registrants, MEDIUM,
                ("meeting:read:admin", "meeting:read:list_registrants:admin")),
    ApiEndpoint("PUT", "/meetings/{meetingId}/registrants/status", registrant_status, MEDIUM,
                ("meeting:write:admin", "meeting:update:registrant_status:admin")),
    ApiEndpoint("DELETE", "/meetings/{meetingId}/registrants/{registrantId}", delete_registrant, LIGHT,
                ("meeting:write:admin", "meeting:delete:registrant:admin")),
    ApiEndpoint("POST", "/meetings/{meetingId}/batch_registrants", batch_registrants, HEAVY,
                ("meeting:write:admin", "meeting:write:batch_registrants:admin")),
    ApiEndpoint("GET", "/report/meetings/{meetingId}/participants", report_participants, HEAVY,
                ("report:read:admin", "report:read:list_meeting_participants:admin")),
    ApiEndpoint("GET", "/past_meetings/{meetingId}/instances", past_instances, MEDIUM,
                ("meeting:read:admin", "meeting:read:list_past_instances:admin")),
    ApiEndpoint("GET", "/past_meetings/{meetingId}/participants", past_participants, MEDIUM,
                ("meeting:read:admin", "meeting:read:list_past_participants:admin")),
)
