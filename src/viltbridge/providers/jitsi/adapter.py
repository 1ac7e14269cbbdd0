"""The Jitsi provider (docs/providers.md §6): 8x8 Jitsi-as-a-Service (JaaS) or a self-hosted Jitsi Meet with token
authentication. There is no meeting API: a room exists while someone is in it, and the JWT in each person's link
says who they are and whether they moderate. So every operation here is local, and nothing is ever called on a
learner's path.

- Rooms: one per part, `<slug of the title>-<20 hex>`, the suffix an HMAC of the session key keyed by the
  connection's signing secret: stable across retries of a create, unguessable, unchanged by edits (the join link
  never changes).
- Launch links: `{base_url}/{AppID}/{room}?jwt=…` (JaaS) or `{base_url}/{room}?jwt=…` (self-hosted), minted at each
  click (signing is local and takes about a millisecond, so a fresh token always carries the current schedule and
  role; `previous` is not needed). Instructors (host, cohost) are moderators, learners are not.
  `context.user.id` is an HMAC of the LMS email (not the email): JaaS echoes it in every participant webhook, and
  it is the `personal_id` the attendance ledger ties segments to launches with.
- Token window: valid from `JOIN_EARLY` before the start (or from the moment it is minted, if earlier: a host
  opening the room well ahead, within the connection's launch window) minus `CLOCK_SKEW`, until `JOIN_LATE`
  after the end (viltbridge's own launch grace after the end is 60 minutes; a class that overruns can still be
  rejoined). Jitsi checks the token when someone enters, so people inside stay past `exp`.
- Attendance: from signed webhooks only (JaaS has no participants API). A part is complete once it has ended and
  `WEBHOOK_GRACE` has passed for late retries. Self-hosted without a webhook_secret is launch-only, and says so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from viltbridge.core.attendance import PERSONAL_ID
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
from viltbridge.providers.jitsi import webhooks
from viltbridge.providers.jitsi.settings import JitsiSettings
from viltbridge.providers.jitsi.tokens import Signer, TokenUser
from viltbridge.providers.naming import personal_id_for, slug

__all__ = ["EXTENDED_OPTIONS", "JitsiProvider", "room_name"]

log = logging.getLogger("viltbridge.providers.jitsi")

JOIN_EARLY = timedelta(minutes=30)
JOIN_LATE = timedelta(minutes=90)
CLOCK_SKEW = timedelta(minutes=5)  # Jitsi's clock may run a little ahead of ours
MIN_VALIDITY = timedelta(minutes=10)  # a token is never handed out already expired
# JaaS retries a failed delivery with exponential backoff [M]; after this the part's attendance is final.
WEBHOOK_GRACE = timedelta(minutes=15)
SUFFIX_LENGTH = 20  # hex digits: 80 bits

EXTENDED_OPTIONS = (
    ExtendedOption("allow_recording", "Instructors may record", "Moderators can start a recording", True),
    ExtendedOption("allow_transcription", "Instructors may transcribe", "Moderators can turn on transcription",
                   False),
    ExtendedOption("allow_livestreaming", "Instructors may live-stream", "Moderators can start a live stream",
                   False),
)
_OPTION_FEATURES = {"allow_recording": "recording", "allow_transcription": "transcription",
                    "allow_livestreaming": "livestreaming"}
# Granted to every moderator: seeing the visitors list and sharing files. Calls out cost money: never granted.
_MODERATOR_FEATURES = {"file-upload": True, "list-visitors": True}


def room_name(title: str, session_key: str, secret: str) -> str:
    """The room of a part: readable, stable for its session key, unguessable without the connection's secret."""
    suffix = hmac.new(secret.encode(), b"room\0" + session_key.encode(), hashlib.sha256).hexdigest()[:SUFFIX_LENGTH]
    return f"{slug(title) or 'class'}-{suffix}"


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


class JitsiProvider:
    kind = "jitsi"

    def __init__(self, settings: JitsiSettings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.signer = Signer(settings)
        self._now = clock or (lambda: datetime.now(UTC))
        self._id_secret = settings.id_secret()
        self.capabilities = Capabilities(
            per_user_links=True,
            webhooks=settings.webhooks,
            host_licences=False,
            recordings=settings.jaas,  # self-hosted recording needs Jibri, which viltbridge cannot see
            attendance=AttendanceSource.WEBHOOKS if settings.webhooks else AttendanceSource.LAUNCH_ONLY,
            update_in_place=True,
            cancel=True,
        )

    def __repr__(self) -> str:
        return f"JitsiProvider({self.settings.deployment}, {self.settings.url}, app_id={self.settings.app_id!r})"

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> JitsiProvider:
        return cls(JitsiSettings.from_settings(raw))  # its settings never change by themselves

    # --- instructors -----------------------------------------------------------------------------------------

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Jitsi has no accounts: instructors moderate by the token in their link."""
        return ProvisionedInstructor(provider_user_id=None, licensed=True)

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        return await self.provision_instructor(instructor)

    # --- meetings --------------------------------------------------------------------------------------------

    def _ref(self, room: str, spec: MeetingSpec) -> MeetingRef:
        options = {o.id: bool(spec.extended_options.get(o.id, o.default)) for o in EXTENDED_OPTIONS}
        features = {feature: options[option] for option, feature in _OPTION_FEATURES.items()}
        # join_url is the room without a token: a page that asks for one (JaaS and token-auth servers let no one in
        # without it). Everyone's real link comes from launch_link.
        return MeetingRef(meeting_id=room, join_url=self.settings.room_url(room), host_url=None,
                          data={"room": room, "title": spec.title, "deployment": self.settings.deployment,
                                "starts_at": spec.starts_at.astimezone(UTC).isoformat(),
                                "ends_at": spec.ends_at.astimezone(UTC).isoformat(),
                                "features": features | _MODERATOR_FEATURES})

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """Nothing to create at Jitsi: the room is named (the same name for a retried create)."""
        room = room_name(spec.title, spec.session_key, self._id_secret)
        log.debug("jitsi: room %s for session %s", room, spec.session_key)
        return self._ref(room, spec)

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """Same room, so every link stays valid; the new schedule and options apply to tokens minted from now."""
        return self._ref(meeting.meeting_id, spec)

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        """Nothing to call: viltbridge stops handing out links (launches of a cancelled session are refused). Tokens
        already handed out stay valid until their `exp`; Jitsi offers no way to revoke them."""
        log.debug("jitsi: room %s retired", meeting.meeting_id)

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        """Jitsi keeps no schedule and no title: nothing to compare, and a room is never gone."""
        return MeetingFacts()

    # --- launches --------------------------------------------------------------------------------------------

    def token_window(self, meeting: MeetingRef, now: datetime) -> tuple[datetime, datetime]:
        """(nbf, exp) of a token minted at `now` for `meeting` (see the module docstring)."""
        starts = _iso(meeting.data.get("starts_at")) or now
        ends = _iso(meeting.data.get("ends_at")) or starts
        not_before = min(now, starts - JOIN_EARLY) - CLOCK_SKEW
        expires = max(ends + JOIN_LATE, now + MIN_VALIDITY)
        return not_before, expires

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """The room's URL with a token made for this person now (moderator for instructors)."""
        moderator = role in (Role.HOST, Role.COHOST)
        personal_id = personal_id_for(person.email, self._id_secret)
        not_before, expires = self.token_window(meeting, self._now())
        features = {str(k): bool(v) for k, v in dict(meeting.data.get("features") or {}).items()}
        user = TokenUser(id=personal_id, name=person.display_name, email=person.email.strip(), moderator=moderator)
        token = self.signer.mint(meeting.meeting_id, user, not_before=not_before, expires=expires, features=features)
        identity = {PERSONAL_ID: personal_id, "room": meeting.meeting_id, "moderator": moderator,
                    "expires_at": expires.isoformat()}
        return LaunchLink(url=f"{self.settings.room_url(meeting.meeting_id)}?jwt={token}", personal=True,
                          identity=identity)

    # --- attendance ------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """No report to ask for: segments come from stored webhooks (`segments_from_events`). Complete once the
        part has ended and late deliveries (JaaS retries) had `WEBHOOK_GRACE` to arrive."""
        if not self.settings.webhooks:
            return AttendanceReport(segments=(), complete=True)
        settled_at = spec.ends_at + WEBHOOK_GRACE
        now = self._now()
        if now < settled_at:
            return AttendanceReport(segments=(), complete=False,
                                    retry_after_seconds=int((settled_at - now).total_seconds()) + 1)
        return AttendanceReport(segments=(), complete=True)

    def health(self) -> list[HealthItem]:
        return [HealthItem("provider API", None, "Jitsi has no meeting API: each person's token is signed here")]

    async def check(self) -> AccountCheck:
        now = self._now()
        someone = TokenUser(id="doctor", name="doctor", email="doctor@example.invalid", moderator=False)
        self.signer.mint("viltbridge-doctor-check", someone, not_before=now, expires=now + timedelta(minutes=1))
        return AccountCheck("no meeting API to call; a join token was signed with the connection's key")

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return EXTENDED_OPTIONS

    # --- webhooks --------------------------------------------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        """Verified on the raw body (X-Jaas-Signature), then kept when attendance is rebuilt from it: room and
        participant events of this app's rooms. Other events are acknowledged and dropped."""
        secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else None
        webhooks.verify_signature(raw_body, headers, secret, now)
        event = webhooks.parse_event(raw_body, now)
        if event.event not in webhooks.KEPT_EVENTS:
            log.debug("jitsi: %s event acknowledged, not kept", event.event)
            return WebhookDelivery(reply=None, events=())
        if self.settings.jaas and event.app_id and event.app_id != self.settings.app_id:
            log.info("jitsi: %s event for another JaaS app (%s) ignored", event.event, event.app_id)
            return WebhookDelivery(reply=None, events=())
        if event.room is None:
            raise webhooks.MalformedWebhook(f"JaaS webhook refused: the {event.event} event names no room (fqn).")
        return WebhookDelivery(reply=None, events=(webhooks.provider_event(event, raw_body),))

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        parsed = [webhooks.parse_event(event.raw.encode("utf-8"), event.occurred_at) for event in events]
        return webhooks.segments_from_events(parsed)

    async def aclose(self) -> None:
        """Nothing is held open: no HTTP client, no background work."""
