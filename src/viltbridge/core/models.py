"""Domain records. Plain dataclasses: the store maps them to rows, the LMS layer to wire models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Role(StrEnum):
    HOST = "host"
    COHOST = "cohost"
    ATTENDEE = "attendee"


class AttendanceState(StrEnum):
    """Where a session's attendance stands: still coming in, usable but may change, or settled."""

    COLLECTING = "collecting"
    PROVISIONAL = "provisional"
    FINAL = "final"


@dataclass(frozen=True)
class VendorOptions:
    """The per-connection switches Cornerstone calls vendor options, plus our launch window."""

    automatic_cancellation: bool = True
    extended_options: bool = False
    launch_window_minutes: int = 15


@dataclass
class Connection:
    """One LMS integration (Cornerstone's "vendor"): a provider account plus the credentials the LMS uses."""

    id: int
    name: str
    provider: str
    provider_settings: dict[str, Any]
    username: str
    options: VendorOptions
    active: bool
    oauth_client_id: str | None = None
    attendance_policy: dict[str, Any] = field(default_factory=dict)  # AttendancePolicy settings; {} = defaults


@dataclass
class Instructor:
    connection_id: int
    email: str
    first_name: str
    last_name: str
    active: bool = True
    provider_user_id: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass
class Meeting:
    """What the provider gave us for one part. `join_url` never reaches a learner directly: launches resolve it."""

    provider: str
    meeting_id: str
    join_url: str
    host_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False  # cancelled at the provider too (not when automatic cancellation is off)


@dataclass
class Session:
    """One LMS SessionId: a single part with its own dates and meeting. Parts sharing `lo_id` form one session."""

    connection_id: int
    external_id: str
    title: str
    description: str
    creator_email: str
    starts_at: datetime
    ends_at: datetime
    utc_offset_minutes: int
    zone: str
    instructor_emails: list[str]
    lo_id: str | None = None
    extended_options: dict[str, Any] = field(default_factory=dict)
    status: SessionStatus = SessionStatus.SCHEDULED
    meeting: Meeting | None = None
    # Provider work still owed ("create", "update" or "cancel") because the provider was down when the LMS
    # saved; a background job does it, and `meeting_error` says why it is not done yet.
    meeting_pending: str | None = None
    meeting_error: str | None = None
    attendance_policy: dict[str, Any] = field(default_factory=dict)  # overrides of the connection's policy
    attendance_state: AttendanceState = AttendanceState.COLLECTING
    cancelled_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    edits: int = 0  # changes since creation (updates and the cancellation): calendar apps' SEQUENCE
    id: int | None = None


@dataclass(frozen=True)
class Launch:
    """One click on a launch link, as recorded in the launch ledger.

    `email` is normalised (the person's key); `lms_email` is spelled as the LMS sent it, which is what
    attendance reports back, since the LMS may compare emails exactly.
    """

    session_id: int
    email: str
    lms_email: str
    role: Role
    clicked_at: datetime
    provider_url: str
    personal: bool
    user_agent: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)  # how the link identifies the person to the provider


@dataclass(frozen=True)
class Registration:
    """A learner's personal link made ahead of their click (pre-registration): the click is answered from here
    without a provider call. Not a click: the launch ledger records the click when it comes.

    `identity` is the link's, as an adapter's `LaunchLink.identity` (the adapter checks on the click that it still
    belongs to the part's meeting)."""

    session_id: int
    email: str  # normalised: the person's key
    lms_email: str  # as the LMS spelled it at the launch that made them known
    meeting_id: str  # the provider meeting the link belongs to: a meeting made afresh needs a new registration
    provider_url: str
    identity: dict[str, Any]
    registered_at: datetime


@dataclass(frozen=True)
class JobRequest:
    """Background work asked for in the same transaction as the data that needs it. One job per `dedupe_key`:
    asking again updates that job rather than adding another."""

    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    run_after: datetime
    connection_id: int | None = None
    session_id: int | None = None
    max_attempts: int = 12
