"""The Zoom provider: meetings per part, hosts validated as licensed users, a fresh start link for hosts and a
personal registrant link for every learner, attendance from Zoom's participants report.

Identity first: a learner's link is a registrant link tied to their LMS email, so the report row carries their
`registrant_id` even when they join as a guest under another name. When registration cannot answer within the
launch budget, the learner still gets in at once, on the meeting link with a display-name tag that identifies them,
and the ledger records why.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import InvalidInput, ProviderFailed
from viltbridge.core.models import Role
from viltbridge.core.provider import (
    EMAIL_VERIFIED_BY,
    HOST_ACCOUNT,
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
from viltbridge.providers.http import BULK, Budget, ProviderApiError
from viltbridge.providers.zoom import webhooks
from viltbridge.providers.zoom.client import ZoomClient
from viltbridge.providers.zoom.registrar import Registrar
from viltbridge.providers.zoom.settings import ZoomSettings

log = logging.getLogger("viltbridge.providers.zoom")

LICENSED = 2
# A learner's click must not wait on Zoom: registration gets this long, then the learner goes in on the tagged link.
REGISTRATION_BUDGET = Budget(total=3.0, max_queue_wait=1.5, attempt_timeout=2.5, max_attempts=2, connect_timeout=2.0)
# When registration did not answer in time, the launch page asks again after this long (the registration goes on).
REGISTRATION_RETRY_SECONDS = 2.0

# Zoom has no idempotency key, so every meeting viltbridge creates carries its session's key, and a create that may
# already have reached Zoom looks for it first (ZoomProvider.create_meeting). The marker is a tracking field: the
# Meetings OpenAPI lets a create body carry `tracking_fields` [{field, value}] and returns them from the create and
# from GET /meetings/{meetingId}; `settings.custom_keys` is only in the PATCH body, so it could not mark a meeting
# whose create answer was lost, and an `agenda` suffix would be shown to learners. Zoom keeps a tracking field only
# if the account defines it (Business plan or higher; an admin adds "viltbridge_session", best not visible);
# without it nothing is found and a retried create makes a new meeting, as before. The value is the session key
# as it is (a connection number and the LMS session id, nothing personal): admins see it, learners never do, and it
# traces a Zoom meeting back to its session.
SESSION_MARKER = "viltbridge_session"
# GET /users/{userId}/meetings has no tracking fields: at most this many likely meetings are read one by one.
MAX_MARKER_LOOKUPS = 5

EXTENDED_OPTIONS = (
    ExtendedOption("waiting_room", "Waiting room", "Learners wait until the instructor admits them", False),
    ExtendedOption("mute_upon_entry", "Mute on entry", "Learners join muted", True),
    ExtendedOption("join_before_host", "Join before host", "Learners may join before the instructor", False),
    ExtendedOption("auto_recording", "Record automatically", "Record to the cloud from the start", False),
)


def name_tag(secret: str, meeting_id: str, email: str) -> str:
    """A short tag, stable per person and meeting, shown in the display name when no personal link could be made:
    it identifies the person in Zoom's report without showing their email to the class. Keyed with a secret only
    the connector knows, so nobody can compute a classmate's tag and be credited as them."""
    digest = hmac.new(secret.encode(), f"{meeting_id}:{email.lower()}".encode(), hashlib.sha256).hexdigest()
    return "vb-" + digest[:10]


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class ZoomProvider:
    kind = "zoom"
    capabilities = Capabilities(
        per_user_links=True,
        webhooks=True,
        host_licences=True,
        recordings=True,
        attendance=AttendanceSource.REPORT,
        update_in_place=True,
        cancel=True,
        max_title_length=200,
        max_description_length=2000,
    )

    def __init__(self, settings: ZoomSettings, client: ZoomClient | None = None) -> None:
        self.settings = settings
        self.client = client or ZoomClient(settings)
        self.registrar = Registrar(self.client, REGISTRATION_BUDGET) if settings.batch_registration else None
        self._marker_warned = False

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> ZoomProvider:
        return cls(ZoomSettings.from_settings(raw))  # its settings never change by themselves

    # --- instructors -----------------------------------------------------------------------------------------

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Active instructors are validated by email at Zoom: a licensed, active user of this account (created first
        when host_policy is 'create'). Inactive ones are not checked; with deactivated_hosts=deactivate their Zoom
        user is deactivated too, and reactivated when the LMS makes them active again."""
        if not instructor.active:
            return await self._deactivate_host(instructor)
        try:
            user = await self.client.get_user(instructor.email)
        except ProviderApiError as err:
            if err.http_status != 404 or self.settings.host_policy != "create":
                raise _as_input_error(err, instructor.email) from None
            user = await self.client.create_user(instructor.email, first_name=instructor.first_name,
                                                 last_name=instructor.last_name, user_type=LICENSED)
        if user.get("status") == "inactive" and self.settings.deactivated_hosts == "deactivate":
            await self.client.set_user_status(str(user["id"]), "activate")
            user = {**user, "status": "active"}
        if user.get("type") != LICENSED:
            raise InvalidInput(
                f"{instructor.email} is a Zoom user without a licence, and Zoom lets only Licensed users host classes. "
                "Give them a Licensed user type in Zoom (User Management > Users), then add the instructor again."
            )
        if user.get("status") == "inactive":
            raise InvalidInput(f"{instructor.email} is deactivated in Zoom; activate them there, then add them again.")
        return ProvisionedInstructor(provider_user_id=str(user["id"]), licensed=True,
                                     data={"type": user.get("type"), "status": user.get("status")})

    async def _deactivate_host(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        if self.settings.deactivated_hosts == "keep":
            return ProvisionedInstructor(provider_user_id=instructor.provider_user_id, licensed=False,
                                         data={"zoom_user": "kept as it is"})
        try:
            user = await self.client.get_user(instructor.provider_user_id or instructor.email)
        except ProviderApiError as err:
            if err.http_status != 404:
                raise
            return ProvisionedInstructor(provider_user_id=None, licensed=False, data={"zoom_user": "none"})
        if user.get("status") == "active":
            await self.client.set_user_status(str(user["id"]), "deactivate")
        log.info("zoom: host %s deactivated as the LMS asked", instructor.email)
        return ProvisionedInstructor(provider_user_id=str(user["id"]), licensed=False,
                                     data={"type": user.get("type"), "status": "inactive"})

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Names are kept in step with the LMS; a new email must belong to a licensed user of the account."""
        provisioned = await self.provision_instructor(instructor)
        if instructor.active and (instructor.first_name or instructor.last_name):
            assert provisioned.provider_user_id is not None
            await self.client.update_user(provisioned.provider_user_id, {"first_name": instructor.first_name,
                                                                         "last_name": instructor.last_name})
        return provisioned

    # --- meetings --------------------------------------------------------------------------------------------

    def _host(self, spec: MeetingSpec) -> str:
        if spec.host is not None:
            return spec.host.email
        if self.settings.default_host:
            return self.settings.default_host
        raise InvalidInput(
            "Zoom needs a host for every meeting, and this session names none. Send InstructorEmails with the "
            "session, or set default_host on the viltbridge connection (a licensed Zoom user's email)."
        )

    def _body(self, spec: MeetingSpec) -> dict[str, Any]:
        options = {option.id: spec.extended_options.get(option.id, option.default) for option in EXTENDED_OPTIONS}
        minutes = max(1, math.ceil((spec.ends_at - spec.starts_at).total_seconds() / 60))
        return {
            "topic": spec.title[:200],
            "type": 2,
            "start_time": spec.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": minutes,
            "timezone": spec.zone,
            "agenda": spec.description[:2000],
            "settings": {
                # Registration with automatic approval gives every learner a personal link (see launch_link);
                # 2 is no registration (learner_links=name_tag).
                "approval_type": 0 if self.settings.learner_links == "registrant" else 2,
                "registration_type": 1,
                "registrants_email_notification": False,  # the LMS, not Zoom, talks to learners
                "registrants_confirmation_email": False,
                "alternative_hosts": ";".join(cohost.email for cohost in spec.co_hosts),
                "alternative_hosts_email_notification": False,
                "waiting_room": bool(options["waiting_room"]),
                "mute_upon_entry": bool(options["mute_upon_entry"]),
                "join_before_host": bool(options["join_before_host"]),
                "auto_recording": "cloud" if options["auto_recording"] else "none",
            },
        }

    @staticmethod
    def _ref(meeting: Mapping[str, Any]) -> MeetingRef:
        # The start link is never stored: it carries the host's token and expires after two hours.
        settings = meeting.get("settings") or {}
        return MeetingRef(
            meeting_id=str(meeting["id"]), join_url=str(meeting["join_url"]), host_url=None,
            data={"uuid": meeting.get("uuid"), "host_id": meeting.get("host_id"), HOST_ACCOUNT: meeting.get("host_id"),
                  "host_email": meeting.get("host_email"), "registration_url": meeting.get("registration_url"),
                  "registration": settings.get("approval_type", 2) in (0, 1)},
        )

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """A new meeting marked with the session's key; when an earlier create may have reached Zoom without its
        answer reaching us (`spec.may_exist`), the meeting it made is found by that mark and updated instead."""
        host = self._host(spec)
        if spec.may_exist:
            found = await self._find_marked_meeting(host, spec)
            if found is not None:
                log.info("zoom: meeting %s of session %s already existed (an earlier create's answer was lost); "
                         "updated in place", found["id"], spec.session_key)
                return await self.update_meeting(self._ref(found), spec)
        body = {**self._body(spec), "tracking_fields": [{"field": SESSION_MARKER, "value": spec.session_key}]}
        meeting = await self.client.create_meeting(host, body)
        if not _marked(meeting, spec.session_key) and not self._marker_warned:
            self._marker_warned = True  # once per connection: it is the account's setting, not this meeting's
            log.warning("zoom: Zoom did not keep the %s tracking field on meeting %s, so a create retried after a "
                        "lost answer cannot find its meeting and may make a second one; define that tracking field "
                        "on the Zoom account (Business plan or higher)", SESSION_MARKER, meeting.get("id"))
        log.debug("zoom: meeting %s created for %s (session %s)", meeting.get("id"), host, spec.session_key)
        return self._ref(meeting)

    async def _find_marked_meeting(self, host: str, spec: MeetingSpec) -> dict[str, Any] | None:
        """The host's meeting that carries this session's mark, if any. The list does not show tracking fields, so
        the likeliest rows are read one by one: same topic and start first (the lost create had this spec), then
        same topic or same start (the session was edited since), newest first. Only the mark decides."""
        wanted = self._body(spec)
        start = _iso(wanted["start_time"])
        likely: list[tuple[int, str, dict[str, Any]]] = []
        async for row in self.client.list_user_meetings(host):
            score = (row.get("topic") == wanted["topic"]) + (_iso(row.get("start_time")) == start)
            if score:
                likely.append((score, str(row.get("created_at") or ""), row))
        likely.sort(key=lambda item: item[:2], reverse=True)
        for _, _, row in likely[:MAX_MARKER_LOOKUPS]:
            try:
                meeting = await self.client.get_meeting(row["id"])
            except ProviderApiError as err:
                if err.http_status == 404:  # deleted since it was listed
                    continue
                raise
            if _marked(meeting, spec.session_key):
                return meeting
        return None

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """In place (PATCH): the join link never changes, so every launch keeps working."""
        host = self._host(spec)
        changes = self._body(spec)
        if str(meeting.data.get("host_email") or "").lower() != host.lower():
            changes["schedule_for"] = host  # a new primary instructor takes the meeting over
        await self.client.update_meeting(meeting.meeting_id, changes, host=host)
        return self._ref(await self.client.get_meeting(meeting.meeting_id))

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        """Topic and times as Zoom holds them now; None when the meeting is gone (deleted in Zoom: 404)."""
        try:
            current = await self.client.get_meeting(meeting.meeting_id, budget=BULK)
        except ProviderApiError as err:
            if err.http_status == 404:
                return None
            raise
        starts_at = _iso(current.get("start_time"))
        minutes = current.get("duration")
        ends_at = starts_at + timedelta(minutes=int(minutes)) if starts_at and isinstance(minutes, int) else None
        return MeetingFacts(title=current.get("topic"), starts_at=starts_at, ends_at=ends_at)

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        await self.client.delete_meeting(meeting.meeting_id, missing_ok=True)

    # --- launches --------------------------------------------------------------------------------------------

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        if role is Role.HOST:
            return await self._start_link(meeting, person)
        if role is Role.COHOST:
            # Alternative hosts sign in to Zoom with their own account and get host powers there.
            return LaunchLink(url=meeting.join_url, personal=False, identity={"zoom_role": "alternative_host"})
        if not meeting.data.get("registration", True):
            return self._tagged_link(meeting, person)  # no registration: no Zoom call on a click
        if (previous is not None and previous.identity.get(PERSONAL_ID)
                and previous.identity.get("meeting_id") == meeting.meeting_id):
            return previous  # the registrant link does not expire: no quota spent on a second click
        try:
            if self.registrar is not None:
                registrant = await self.registrar.register(meeting.meeting_id, person)
            else:  # one call per click: simple, but 30 a second at most on Pro
                registrant = await self.client.add_registrant(
                    meeting.meeting_id, person.email, person.first_name or person.email.split("@")[0],
                    person.last_name or "", budget=REGISTRATION_BUDGET,
                )
        except (ProviderFailed, TimeoutError) as err:
            return self._registration_form(meeting, getattr(err, "message", None)
                                           or "Zoom did not answer within the launch budget")
        # `registrant_id` only: in this response `id` is the meeting's number, not the registrant's.
        return LaunchLink(url=str(registrant["join_url"]), personal=True,
                          identity={PERSONAL_ID: str(registrant["registrant_id"]),
                                    "meeting_id": meeting.meeting_id})

    def _tagged_link(self, meeting: MeetingRef, person: Person) -> LaunchLink:
        tag = name_tag(self.settings.client_secret.get_secret_value(), meeting.meeting_id, person.email)
        separator = "&" if "?" in meeting.join_url else "?"
        display = f"{person.display_name.split('@')[0]} {tag}"
        return LaunchLink(url=f"{meeting.join_url}{separator}uname={quote(display)}", personal=False,
                          identity={"display_name_tag": tag, "meeting_id": meeting.meeting_id})

    @staticmethod
    def _registration_form(meeting: MeetingRef, reason: str) -> LaunchLink:
        """Zoom admits only registrants to a meeting that requires registration, so without a registrant link the
        way in is Zoom's registration form. The registration keeps going in the background: the launch page holds
        the learner a few seconds and asks again, and the form is the last resort. A learner who registers there
        is matched by the email they type (see collect_attendance)."""
        log.warning("zoom: registration for meeting %s failed (%s)", meeting.meeting_id, reason)
        return LaunchLink(url=str(meeting.data.get("registration_url") or meeting.join_url), personal=False,
                          identity={"meeting_id": meeting.meeting_id, "fallback": "registration_form"},
                          note=f"registration failed: {reason}", retry_after_seconds=REGISTRATION_RETRY_SECONDS)

    async def _start_link(self, meeting: MeetingRef, person: Person) -> LaunchLink:
        """A fresh start link on every click: they expire after two hours, so none is ever cached."""
        try:
            current = await self.client.get_meeting(meeting.meeting_id)
        except ProviderFailed as err:
            log.warning("zoom: no start link for meeting %s (%s); host sent to the join link", meeting.meeting_id,
                        err.message)
            return LaunchLink(url=meeting.join_url, personal=False, note=f"start link unavailable: {err.message}",
                              identity={"zoom_role": "host", "fallback": "join_link"})
        # Not `personal`: a start link is never reused from the ledger (it expires and carries the host's token).
        return LaunchLink(url=str(current["start_url"]), personal=False, identity={"zoom_role": "host"})

    # --- attendance ------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """Every ended instance's participants report, one segment per row. Not complete while Zoom has no ended
        instance yet or still reports `duration: 0` (not processed)."""
        instances = await self.client.past_meeting_instances(meeting.meeting_id, budget=BULK)
        if not instances:
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=15 * 60)
        segments: list[ParticipantSegment] = []
        complete = True
        registrant_emails: dict[str, str] | None = None  # read once, only if a row needs it
        for instance in instances:
            uuid = str(instance["uuid"])
            try:
                rows = [row async for row in self.client.report_participants(uuid)]
            except ProviderApiError as err:
                # Zoom keeps no report for an instance with fewer than two participants (a host's dry run): 3001.
                if err.http_status == 404:
                    log.info("zoom: no report for instance %s of meeting %s (%s)", uuid, meeting.meeting_id,
                             err.provider_message)
                    continue
                raise
            for row in rows:
                joined, left = _iso(row.get("join_time")), _iso(row.get("leave_time"))
                if joined is None:
                    continue
                # duration 0 on a row that lasted means Zoom has not processed the report yet.
                if not row.get("duration") and left is not None and left - joined >= timedelta(seconds=1):
                    complete = False
                # Waiting-room rows are kept with their status as evidence: the attendance policy decides whether
                # waiting to be admitted counts (AttendancePolicy.count_waiting_room).
                evidence = {key: row[key] for key in ("registrant_id", "participant_user_id", "user_id", "id",
                                                      "customer_key", "status") if row.get(key)}
                evidence["instance_uuid"] = uuid
                if row.get("registrant_id"):
                    evidence[PERSONAL_ID] = str(row["registrant_id"])
                email = row.get("user_email") or None
                if email and (row.get("participant_user_id") or row.get("id")):
                    # A Zoom user id means the person was signed in to Zoom (it is "" for guests), so the email is
                    # the account's, not typed: it credits them even without a launch.
                    evidence[EMAIL_VERIFIED_BY] = "Zoom"
                if email is None and row.get("registrant_id"):
                    # Someone who registered on Zoom's form (not through a launch): the email they registered with.
                    if registrant_emails is None:
                        registrant_emails = await self._registrant_emails(meeting.meeting_id)
                    email = registrant_emails.get(str(row["registrant_id"]))
                    if email:
                        evidence["registrant_email"] = email
                segments.append(ParticipantSegment(
                    participant_key=str(row.get("participant_user_id") or row.get("id") or row.get("user_id")),
                    joined_at=joined, left_at=left,
                    email=email, display_name=row.get("name") or None, evidence=evidence, instance=uuid,
                ))
        return AttendanceReport(segments=tuple(segments), complete=complete,
                                retry_after_seconds=None if complete else 15 * 60)

    async def _registrant_emails(self, meeting_id: str) -> dict[str, str]:
        try:
            rows = await self.client.list_registrants(meeting_id, budget=BULK)
        except ProviderApiError as err:
            if err.http_status == 404:  # registration was turned off, or the meeting is gone: nothing to read
                return {}
            raise
        return {str(row["id"]): str(row["email"]) for row in rows if row.get("id") and row.get("email")}

    def health(self) -> list[HealthItem]:
        return self.client.http.health()

    async def check(self) -> AccountCheck:
        user = await self.client.get_user("me")  # needs the account's token; reads only the authorising user
        return AccountCheck(f"token issued; GET /users/me answered ({user.get('email') or user.get('id')})",
                            self.client.http.clock_offset())

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return EXTENDED_OPTIONS

    # --- webhooks --------------------------------------------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        """Zoom's v0 signature checked on the raw body (stale timestamps refused); the url_validation challenge
        answered; participant and meeting events kept for live attendance."""
        secret = self.settings.webhook_secret_token.get_secret_value()
        webhooks.verify_signature(raw_body, headers, secret, now)
        event = webhooks.parse_event(raw_body)
        if event.event == webhooks.ENDPOINT_URL_VALIDATION:
            return WebhookDelivery(reply=webhooks.url_validation_response(event, secret), events=())
        stored = ProviderEvent(dedupe_key=event.dedupe_key, meeting_id=event.meeting_id, event=event.event,
                               occurred_at=event.event_ts, raw=raw_body.decode("utf-8"))
        return WebhookDelivery(reply=None, events=(stored,))

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        return webhooks.segments_from_events([webhooks.parse_event(event.raw.encode("utf-8")) for event in events])

    async def aclose(self) -> None:
        """Stop pending registration batches and close the HTTP client's connections."""
        if self.registrar is not None:
            await self.registrar.aclose()
        await self.client.aclose()


def _marked(meeting: Mapping[str, Any], session_key: str) -> bool:
    """Whether a meeting (create answer or GET) carries the session's mark."""
    fields = meeting.get("tracking_fields") or []
    return any(isinstance(item, Mapping) and item.get("field") == SESSION_MARKER and item.get("value") == session_key
               for item in fields)


def _as_input_error(err: ProviderApiError, email: str) -> InvalidInput | ProviderApiError:
    """A host Zoom does not know is a correctable input problem (400 to the LMS), not an outage."""
    if err.http_status == 404:
        return InvalidInput(err.message)
    return err
