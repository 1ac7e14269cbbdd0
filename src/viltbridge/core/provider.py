"""The provider protocol: what every meeting provider adapter implements, designed against all of them.

Zoom, Teams (Graph), Webex, GoTo, BigBlueButton, Jitsi/JaaS and plain links differ in what they can do, so an
adapter declares `Capabilities` and the services adapt: a provider without per-user links still gets a launch
ledger; one without an attendance API gets launch evidence, and the data says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from viltbridge.core.models import Role


class SettingsSink(Protocol):
    """Where the settings a provider itself changes (a rotated refresh token) are kept: with the connection,
    encrypted, so a restart does not go back to a token the provider has since revoked. Every adapter factory takes
    one: `from_settings(raw, on_settings_change=...)`."""

    async def __call__(self, changes: Mapping[str, str]) -> None:
        """Store `changes` (already in use in memory) with the connection."""

    async def stored(self, key: str) -> str | None:
        """The value stored for `key` now. Another adapter of the same connection (the job worker, another server
        process) may have stored a newer one than this adapter holds: a provider that rotates refresh tokens
        revokes the old one when it issues the new."""


class AttendanceSource(StrEnum):
    NONE = "none"
    LAUNCH_ONLY = "launch_only"  # we only know who clicked through our launch redirect
    WEBHOOKS = "webhooks"  # live join/leave events (JaaS, BBB)
    REPORT = "report"  # a post-meeting report API (Zoom, Graph, Webex, GoTo), possibly plus webhooks


@dataclass(frozen=True)
class Capabilities:
    per_user_links: bool  # the provider can mint a link tied to one person (registrant, signed join, JWT)
    webhooks: bool
    host_licences: bool  # hosts must be licensed users on the provider account
    recordings: bool
    attendance: AttendanceSource
    update_in_place: bool  # a meeting's time/title can change without a new join link
    cancel: bool
    max_title_length: int | None = None
    max_description_length: int | None = None


@dataclass(frozen=True)
class Person:
    email: str
    first_name: str | None = None
    last_name: str | None = None

    @property
    def display_name(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or self.email


@dataclass(frozen=True)
class InstructorSpec:
    email: str
    first_name: str
    last_name: str
    active: bool = True
    provider_user_id: str | None = None


@dataclass(frozen=True)
class ProvisionedInstructor:
    provider_user_id: str | None
    licensed: bool = True
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MeetingSpec:
    """What the LMS asked for, in provider-neutral terms. `session_key` is stable across retries."""

    session_key: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    zone: str
    utc_offset_minutes: int
    host: InstructorSpec | None
    co_hosts: tuple[InstructorSpec, ...] = ()
    extended_options: dict[str, Any] = field(default_factory=dict)
    # An earlier create for this session may have reached the provider without its answer reaching us (a timeout,
    # a killed worker): a provider that can look for it should, before creating another meeting.
    may_exist: bool = False


@dataclass(frozen=True)
class MeetingFacts:
    """What the provider holds for a meeting now, to compare with the session (None where it says nothing)."""

    title: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


# The `MeetingRef.data` key under which an adapter names the provider account that hosts the meeting (a Zoom
# host id, a Teams organizer, a Webex host, a GoTo organizer), so two parts on one host account at the same time
# are flagged as a conflict whoever teaches them. Providers without host accounts leave it out.
HOST_ACCOUNT = "host_account"


@dataclass(frozen=True)
class MeetingRef:
    meeting_id: str
    join_url: str
    host_url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchLink:
    """Where one person goes. `personal` is True when the link itself identifies the person to the provider."""

    url: str
    personal: bool
    # How the link identifies the person to the provider: {"personal_id": ...} (attendance.PERSONAL_ID: the id the
    # provider reports them by) or {"display_name_tag": ...}, plus what the adapter needs to reuse the link.
    identity: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why a weaker link was handed out, for the ledger
    # Set when a better (personal) link is likely within this many seconds: the launch page may hold the person
    # that long and ask again before sending them to `url`.
    retry_after_seconds: float | None = None


# The `ParticipantSegment.evidence` key an adapter sets when the provider itself vouches for the segment's email: the
# person was signed in to an account the provider authenticated (a Zoom account user, a Teams tenant user, a Webex
# user), or joined with a token we signed for that email (JaaS). Its value names who verified it ("Zoom"), for the
# attendance explanation. Never set for an email the participant typed (a guest's form field). Kept in `evidence`
# rather than a field of its own so the attendance ledger, which stores evidence as it is, keeps it too.
EMAIL_VERIFIED_BY = "email_verified_by"


@dataclass(frozen=True)
class ParticipantSegment:
    """One join/leave interval as the provider reports it, with every identity clue it gives."""

    participant_key: str
    joined_at: datetime
    left_at: datetime | None
    email: str | None = None
    display_name: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    # Which run of the meeting this segment belongs to (a restarted meeting has several, each with its own report);
    # "" when the provider has no such notion.
    instance: str = ""

    @property
    def email_verified_by(self) -> str | None:
        """Who vouches for `email` (see `EMAIL_VERIFIED_BY`); None when there is no email or the participant merely
        typed it."""
        verified = self.evidence.get(EMAIL_VERIFIED_BY)
        return str(verified) if verified and self.email else None


@dataclass(frozen=True)
class AttendanceReport:
    segments: tuple[ParticipantSegment, ...]
    complete: bool  # the provider says this is all it will ever report for the meeting
    retry_after_seconds: int | None = None


@dataclass(frozen=True)
class ProviderEvent:
    """One webhook event as stored in the ledger: kept raw, stored once per `dedupe_key`."""

    dedupe_key: str
    meeting_id: str | None
    event: str
    occurred_at: datetime
    raw: str


@dataclass(frozen=True)
class WebhookDelivery:
    """What a verified webhook delivery holds: a reply the provider expects (a challenge), and events to keep."""

    reply: dict[str, Any] | None
    events: tuple[ProviderEvent, ...]


@dataclass(frozen=True)
class HealthItem:
    """One line of a connection's provider health, as this server process has seen it."""

    name: str  # "token", "last call", "circuit breaker", "calls today: <quota>"
    ok: bool | None  # None: nothing to judge yet
    detail: str


@dataclass(frozen=True)
class AccountCheck:
    """What a provider's `check()` proved, in words, and how far the provider's clock (its HTTP `Date` header) was
    from this machine's, where it answered over HTTP."""

    verified: str
    clock_offset_seconds: float | None = None  # the provider's clock minus ours; Date has whole seconds


@dataclass(frozen=True)
class ExtendedOption:
    """A provider option the admin may tick per session (Cornerstone's "extended options")."""

    id: str
    name: str
    description: str = ""
    default: bool = False


class Provider(Protocol):
    kind: str
    capabilities: Capabilities

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor: ...

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor: ...

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef: ...

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef: ...

    async def cancel_meeting(self, meeting: MeetingRef) -> None: ...

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        """What the provider holds for the meeting now (nightly reconciliation compares it with the session);
        None when the meeting is gone at the provider (deleted there by someone else). Bulk work: never on a
        learner's path."""
        ...

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """Where `person` goes now. `previous` is the personal link this person last got for this meeting (from
        the launch ledger): reuse it where still valid instead of spending provider quota on a new one."""
        ...

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport: ...

    def extended_options(self) -> tuple[ExtendedOption, ...]: ...

    def health(self) -> list[HealthItem]:
        """What this process knows of the provider account: token, last call, breaker, calls against each quota
        today. No provider call (the console shows it)."""
        ...

    async def check(self) -> AccountCheck:
        """Prove the connection's credentials now, for `viltbridge doctor`: a token where the provider uses one and
        the lightest read-only call it has; returns what was verified, with the provider's clock offset. Raises
        `ProviderFailed` (its message says what to fix) when the provider refuses or cannot be reached. A provider
        without an API checks what it can locally and says so."""
        ...

    async def aclose(self) -> None:
        """Release connections and background work; called when the adapter is replaced or the server stops."""
        ...

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        """Verify a delivery on its raw body (raise Forbidden when it is not the provider's) and parse it. Only
        called for providers whose capabilities say `webhooks`."""
        ...

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        """Join/leave segments from stored webhook events: live attendance before the report exists."""
        ...


@runtime_checkable
class RegistersAhead(Protocol):
    """A provider whose personal links are registrations that outlive the click (GoTo Training's registrants), so
    learners known in advance can be registered by a background job at the pace the provider allows, and their
    click answered from the store. Providers whose links are signed locally, or cheap enough per click, leave it
    out."""

    async def register_ahead(self, meeting: MeetingRef, people: list[Person]) -> list[tuple[Person, LaunchLink]]:
        """Register `people` for the meeting, paced as bulk work (leaving room for learners' clicks); returns the
        personal link of each one registered, in order. Someone registered already (an earlier run that lost its
        answers) is given their existing link. When the provider fails after some registrations, returns those
        (fewer than asked); when it fails before any, raises `ProviderFailed`. Nothing made is lost either way: a
        rerun finds them registered."""
        ...
