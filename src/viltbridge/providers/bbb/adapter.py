"""The BigBlueButton provider (docs/providers.md §4): no accounts and no schedule at BBB, so a meeting is a
meetingID derived from the session plus the parameters to create it with; it is created (idempotently) when
scheduled and again at every launch, because BBB drops a meeting nobody joined within minutes.

Identity first: every person gets their own signed join URL with a `userID` derived from their LMS email, and the
learning-analytics callback BBB posts after the meeting names attendees by that `userID`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import ProviderFailed
from viltbridge.core.models import Role
from viltbridge.core.provider import (
    AccountCheck,
    AttendanceReport,
    AttendanceSource,
    Capabilities,
    ExtendedOption,
    HealthItem,
    InstructorSpec,
    LaunchLink,
    MeetingFacts,
    MeetingRef,
    MeetingSpec,
    ParticipantSegment,
    Person,
    ProviderEvent,
    ProvisionedInstructor,
    SettingsSink,
    WebhookDelivery,
)
from viltbridge.providers.bbb import webhooks
from viltbridge.providers.bbb.client import BbbClient
from viltbridge.providers.bbb.settings import BbbSettings
from viltbridge.providers.http import BULK, INTERACTIVE, Budget
from viltbridge.providers.naming import personal_id_for

log = logging.getLogger("viltbridge.providers.bbb")

# A learner's click must not wait long on BBB: after this the signed link is handed out anyway (see launch_link).
LAUNCH_BUDGET = Budget(total=3.0, max_queue_wait=1.0, attempt_timeout=2.5, max_attempts=2, connect_timeout=2.0)
TITLE_LIMIT = 64  # `name`: 2-64 characters (§4.2)
# BBB posts the analytics callback once the meeting's events are processed, usually within minutes of the end [L].
CALLBACK_GRACE = timedelta(minutes=30)
RUNNING_RETRY_SECONDS = 10 * 60

EXTENDED_OPTIONS = (
    ExtendedOption("record", "Allow recording", "The instructor may start and stop a recording", False),
    ExtendedOption("mute_on_start", "Mute on entry", "Everyone joins muted", True),
    ExtendedOption("guest_lobby", "Moderator approves learners", "Learners wait until a moderator lets them in",
                   False),
    ExtendedOption("webcams_only_for_moderator", "Webcams visible to moderators only",
                   "Learners see only the moderators' webcams", False),
)


def meeting_id_for(session_key: str) -> str:
    """BBB's meetingID for a session: readable (letters, digits, `-`, `_`) with a digest so that two keys that read
    alike never share a meeting, and stable so a retried create finds the same meeting."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", session_key).strip("-")[:64]
    return f"vb-{readable}-{hashlib.sha256(session_key.encode()).hexdigest()[:12]}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


class BbbProvider:
    kind = "bbb"
    capabilities = Capabilities(
        per_user_links=True,
        webhooks=True,
        host_licences=False,
        recordings=True,
        attendance=AttendanceSource.WEBHOOKS,
        update_in_place=True,
        cancel=True,
        max_title_length=TITLE_LIMIT,
        max_description_length=None,
    )

    def __init__(self, settings: BbbSettings, client: BbbClient | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.client = client or BbbClient(settings)
        self._now = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> BbbProvider:
        return cls(BbbSettings.from_settings(raw))  # its settings never change by themselves

    @property
    def _secret(self) -> str:
        return self.settings.shared_secret.get_secret_value()

    # --- instructors -----------------------------------------------------------------------------------------

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """BBB has no user accounts: instructors are moderators by the link they are given."""
        return ProvisionedInstructor(provider_user_id=None, licensed=True)

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        return await self.provision_instructor(instructor)

    # --- meetings --------------------------------------------------------------------------------------------

    def _create_params(self, spec: MeetingSpec, meeting_id: str) -> dict[str, str]:
        options = {option.id: bool(spec.extended_options.get(option.id, option.default)) for option in EXTENDED_OPTIONS}
        title = spec.title.strip()[:TITLE_LIMIT]
        params = {
            "name": title if len(title) >= 2 else f"{title} class".strip(),
            "meetingID": meeting_id,
            # The scheduled length plus some slack; 0 would be unlimited. BBB ends the meeting after this.
            "duration": str(max(1, int((spec.ends_at - spec.starts_at).total_seconds() // 60)) + 60),
            "record": _flag(options["record"]),
            "allowStartStopRecording": _flag(options["record"]),
            "muteOnStart": _flag(options["mute_on_start"]),
            "guestPolicy": "ASK_MODERATOR" if options["guest_lobby"] else "ALWAYS_ACCEPT",
            "webcamsOnlyForModerator": _flag(options["webcams_only_for_moderator"]),
            "meetingKeepEvents": "true",  # the analytics callback is built from the kept events
            "meta_viltbridge-session": spec.session_key,
            "meta_viltbridge-starts-at": spec.starts_at.astimezone(UTC).isoformat(),
        }
        if self.settings.analytics_callback_url:
            params["meta_analytics-callback-url"] = self.settings.analytics_callback_url
        return params

    def _passwords(self, meeting_id: str) -> dict[str, str]:
        """The meeting's moderator and attendee passwords, derived from the shared secret so every create and join
        agrees without storing them. `join`'s `role` exists only from BBB 2.4; an older server ignores it and decides
        the role by `password`, so joins carry both (from 2.4 a valid `role` overrides `password`)."""
        def derived(role: str) -> str:
            digest = hmac.new(self._secret.encode(), f"viltbridge-bbb-{role}:{meeting_id}".encode(), hashlib.sha256)
            return digest.hexdigest()[:32]  # 2-64 characters (2.4's rule)
        return {"moderatorPW": derived("moderator"), "attendeePW": derived("attendee")}

    async def _create(self, params: Mapping[str, str], budget: Budget = INTERACTIVE) -> None:
        # The passwords are added here, not kept in the meeting's stored data: they follow from the secret.
        await self.client.create({**params, **self._passwords(params["meetingID"])}, budget=budget)

    def _join_url(self, params: Mapping[str, str]) -> str:
        passwords = self._passwords(params["meetingID"])
        password = passwords["moderatorPW" if params["role"] == "MODERATOR" else "attendeePW"]
        return self.client.join_url({**params, "password": password})

    def _ref(self, meeting_id: str, params: Mapping[str, str], spec: MeetingSpec) -> MeetingRef:
        # BBB has no shared link: the fallback is a signed viewer join without a userID (anonymous at BBB).
        shared = self._join_url({"fullName": "Guest", "meetingID": meeting_id, "role": "VIEWER"})
        return MeetingRef(meeting_id=meeting_id, join_url=shared, host_url=None,
                          data={"create": dict(params), "title": spec.title,
                                "starts_at": spec.starts_at.astimezone(UTC).isoformat(),
                                "ends_at": spec.ends_at.astimezone(UTC).isoformat()})

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """Created now (which also proves server_url and the secret work) and again at each launch: BBB removes a
        meeting nobody joined within minutes, and `create` on an existing meetingID changes nothing."""
        meeting_id = meeting_id_for(spec.session_key)
        params = self._create_params(spec, meeting_id)
        await self._create(params)
        log.debug("bbb: meeting %s created (session %s)", meeting_id, spec.session_key)
        return self._ref(meeting_id, params, spec)

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """Same meetingID, so every link stays valid. BBB cannot change a created meeting: the new title and
        options are kept here and used by the next `create`, i.e. the next launch after the running meeting (if
        any) has ended. Nothing is sent to BBB now."""
        return self._ref(meeting.meeting_id, self._create_params(spec, meeting.meeting_id), spec)

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        """`end`: ends it if running; a meeting that is not running has nothing to cancel at BBB."""
        await self.client.end(meeting.meeting_id)

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        """BBB keeps no schedule, and forgets a meeting when it is not running: only a running meeting's name is
        known. Never None: a meeting absent at BBB is normal, not deleted by someone else."""
        info = await self.client.meeting_info(meeting.meeting_id, budget=BULK)
        return MeetingFacts(title=str(info.get("meetingName")) if info else None)

    # --- launches --------------------------------------------------------------------------------------------

    def _join_params(self, meeting_id: str, person: Person, role: Role) -> dict[str, str]:
        moderator = role in (Role.HOST, Role.COHOST)
        return {"fullName": person.display_name, "meetingID": meeting_id,
                "role": "MODERATOR" if moderator else "VIEWER",
                "userID": personal_id_for(person.email, self._secret)}

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """A join URL signed for this person (moderator for instructors, viewer for learners), after making sure
        the meeting exists (create is idempotent). Signing needs no call, so a slow BBB only costs the create: the
        link is handed out anyway and the ledger notes it."""
        params = self._join_params(meeting.meeting_id, person, role)
        identity = {PERSONAL_ID: params["userID"], "meeting_id": meeting.meeting_id,
                    "bbb_role": params["role"]}
        note = None
        try:
            await self._create({"meetingID": meeting.meeting_id, "name": meeting.meeting_id,
                                **dict(meeting.data.get("create") or {})}, budget=LAUNCH_BUDGET)
        except (ProviderFailed, TimeoutError) as err:
            note = f"meeting not confirmed at BigBlueButton: {getattr(err, 'message', None) or 'no answer in time'}"
            log.warning("bbb: %s (meeting %s)", note, meeting.meeting_id)
        return LaunchLink(url=self._join_url(params), personal=True, identity=identity, note=note)

    # --- attendance ------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """BBB has no attendance report: segments come from the analytics callbacks (`segments_from_events`).
        Complete once the meeting is not running and the callback had time to arrive after the scheduled end."""
        info = await self.client.meeting_info(meeting.meeting_id, budget=BULK)
        if info is not None and info.get("running") == "true":
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=RUNNING_RETRY_SECONDS)
        settled_at = spec.ends_at + CALLBACK_GRACE
        if self._now() < settled_at:
            wait = int((settled_at - self._now()).total_seconds()) + 1
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=wait)
        return AttendanceReport(segments=(), complete=True)

    def health(self) -> list[HealthItem]:
        return self.client.http.health()

    async def check(self) -> AccountCheck:
        # BBB has no token: a signed getMeetingInfo for a meeting that does not exist proves the shared secret (a
        # wrong one is answered `checksumError`, an unknown meeting `notFound`).
        await self.client.meeting_info("viltbridge-doctor-check")
        return AccountCheck("shared secret accepted (getMeetingInfo answered)", self.client.http.clock_offset())

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return EXTENDED_OPTIONS

    # --- webhooks --------------------------------------------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        """The analytics callback: `Authorization: Bearer` JWT HS512 signed with the shared secret."""
        webhooks.verify_jwt(webhooks.bearer_token(headers), self._secret, now)
        return WebhookDelivery(reply=None, events=(webhooks.callback_event(raw_body, now),))

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        return webhooks.segments_from_events(events)

    async def aclose(self) -> None:
        await self.client.aclose()
