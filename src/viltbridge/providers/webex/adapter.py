"""The Webex provider: a meeting series per part (scheduled on behalf of the host), co-instructors as cohost
invitees, a personal link per click from `POST /meetings/join` (tied to the person's email and name), attendance
from `meetingParticipants` of each held instance, live attendance from signed webhooks (docs/providers.md §3).

Identity first: the join link is made for the learner's LMS email, so Webex's roster shows that email even when
they join without signing in. When Webex cannot answer within the launch budget, the learner still gets in on the
shared meeting link and the ledger records why.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from viltbridge.core.errors import InvalidInput, ProviderFailed
from viltbridge.core.models import Role
from viltbridge.core.provider import (
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
from viltbridge.providers.webex import webhooks
from viltbridge.providers.webex.client import WebexClient
from viltbridge.providers.webex.settings import WebexSettings

log = logging.getLogger("viltbridge.providers.webex")

# A learner's click must not wait long on Webex: after this, the shared link (with a note in the ledger).
LAUNCH_BUDGET = Budget(total=3.0, max_queue_wait=1.0, attempt_timeout=2.5, max_attempts=2, connect_timeout=2.0)
# A reused personal link must still be valid for this long after the click.
LINK_REUSE_MARGIN = timedelta(minutes=5)
# Webex lists an ended instance only ~15 minutes after it ends (§3.2): ask again after that long.
REPORT_DELAY_SECONDS = 15 * 60
TITLE_LIMIT, AGENDA_LIMIT = 128, 1300
ENDED_STATES = frozenset({"ended"})

EXTENDED_OPTIONS = (
    ExtendedOption("join_before_host", "Join before host", "Learners may join up to 15 minutes before the instructor",
                   False),
    ExtendedOption("auto_recording", "Record automatically", "Record the class from the start", False),
    ExtendedOption("lobby", "Lobby for guests", "People who are not signed in wait in the lobby until admitted",
                   False),
)


def session_tag(session_key: str) -> str:
    """The session's mark on its Webex meeting (an integrationTag: at most 64 characters, visible only to this
    app). The key as it is when it fits (a connection number and the LMS session id, nothing personal), else a
    digest of it."""
    tag = f"viltbridge:{session_key}"
    return tag if len(tag) <= 64 else "viltbridge:" + hashlib.sha256(session_key.encode()).hexdigest()[:48]


def host_sites(site_urls: list[str]) -> set[str]:
    """The sites a person hosts on. Webex writes a host role as the bare site name and an attendee role with
    `#attendee` appended (people API, `siteUrls`); only a host role lets the person own or cohost meetings. An
    explicit `#host` is read as a host role too; any other suffix is not."""
    sites = set()
    for entry in site_urls:
        site, _, role = entry.strip().lower().partition("#")
        if site and role in ("", "host"):
            sites.add(site)
    return sites


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("1970-01-01"):
        return None  # Webex's "not known yet" (§3.7)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WebexProvider:
    kind = "webex"
    capabilities = Capabilities(
        per_user_links=True,
        webhooks=True,
        host_licences=True,
        recordings=True,
        attendance=AttendanceSource.REPORT,
        update_in_place=True,
        cancel=True,
        max_title_length=TITLE_LIMIT,
        max_description_length=AGENDA_LIMIT,
    )

    def __init__(self, settings: WebexSettings, client: WebexClient | None = None,
                 clock: Callable[[], datetime] | None = None, on_settings_change: SettingsSink | None = None) -> None:
        self.settings = settings
        self.client = client or WebexClient(settings, on_settings_change=on_settings_change)
        self._now = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> WebexProvider:
        return cls(WebexSettings.from_settings(raw), on_settings_change=on_settings_change)

    # --- instructors -----------------------------------------------------------------------------------------

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Active instructors must be people of the organisation who can sign in and have a host role on the
        connection's site (a Meetings licence there). Webex users are managed in Control Hub, so nobody is created
        or deactivated from here."""
        if not instructor.active:
            return ProvisionedInstructor(provider_user_id=instructor.provider_user_id, licensed=False,
                                         data={"webex_user": "kept as it is"})
        person = await self.client.find_person(instructor.email)
        if person is None:
            raise InvalidInput(f"{instructor.email} is not a user of this Webex organisation. Add them in Control Hub "
                               "(Users) with a Meetings licence, then add the instructor again.")
        # `status` is presence (active, inactive, DoNotDisturb...), which says nothing about whether the account
        # works: only `loginEnabled` (returned to admins, as the string "true"/"false") does.
        if str(person.get("loginEnabled")).lower() == "false":
            raise InvalidInput(f"{instructor.email} is not allowed to sign in to Webex, so they cannot host classes. "
                               "In Control Hub (Users > the person > General) enable their sign-in, then add the "
                               "instructor again.")
        # `licenses` is in admin answers only; when Webex sends it, an empty list means no Meetings licence at all.
        if "licenses" in person and not person.get("licenses"):
            raise InvalidInput(f"{instructor.email} has no Webex licence, so they cannot host classes. In Control Hub "
                               "(Users > the person > Licenses) give them a Meetings licence, then add the instructor "
                               "again.")
        site_urls = [str(entry) for entry in person.get("siteUrls") or []]
        hosted = host_sites(site_urls)
        site = self.settings.site
        if not hosted or (site is not None and site not in hosted):
            where = f"on the Webex site {site}" if site else "on any Webex site"
            has = (f" (Webex lists them as: {', '.join(site_urls)}; an entry ending in #attendee is an attendee "
                   "account, which cannot host)") if site_urls else ""
            raise InvalidInput(f"{instructor.email} has no host account {where}{has}, so they cannot host classes. "
                               f"In Control Hub (Users > the person > Licenses) give them a Meetings licence on "
                               f"{site or 'a Webex site'} (a host role, not attendee), then add the instructor again.")
        return ProvisionedInstructor(provider_user_id=str(person["id"]), licensed=True,
                                     data={"site_urls": site_urls})

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        """The (possibly new) email must belong to a licensed user; names live in Control Hub, not here."""
        return await self.provision_instructor(instructor)

    # --- meetings --------------------------------------------------------------------------------------------

    def _host(self, spec: MeetingSpec) -> str:
        if spec.host is not None:
            return spec.host.email
        if self.settings.default_host:
            return self.settings.default_host
        raise InvalidInput("Webex needs a host for every meeting, and this session names none. Send InstructorEmails "
                           "with the session, or set default_host on the viltbridge connection.")

    def _body(self, spec: MeetingSpec) -> dict[str, Any]:
        options = {option.id: bool(spec.extended_options.get(option.id, option.default))
                   for option in EXTENDED_OPTIONS}
        body: dict[str, Any] = {
            "title": spec.title[:TITLE_LIMIT], "agenda": spec.description[:AGENDA_LIMIT],
            "start": _z(spec.starts_at), "end": _z(spec.ends_at), "timezone": spec.zone,
            "enabledJoinBeforeHost": options["join_before_host"],
            "joinBeforeHostMinutes": 15 if options["join_before_host"] else 0,
            "enabledAutoRecordMeeting": options["auto_recording"],
            "unlockedMeetingJoinSecurity": "allowJoinWithLobby" if options["lobby"] else "allowJoin",
        }
        if self.settings.act_for_hosts:
            body["hostEmail"] = self._host(spec)
        return body

    @staticmethod
    def _ref(meeting: Mapping[str, Any], cohosts: list[str]) -> MeetingRef:
        # The series id is what every later call names; instances are found from it (meetingSeriesId).
        if not meeting.get("id") or not meeting.get("webLink"):
            # Transient, and the call may have taken effect: a retried create finds the series by its tag.
            raise ProviderFailed("webex", "Webex answered without the meeting's id and webLink, so viltbridge "
                                          "cannot tell which meeting it is; it will ask Webex again. If this "
                                          "persists, check api_base_url.")
        return MeetingRef(meeting_id=str(meeting["id"]), join_url=str(meeting["webLink"]), host_url=None,
                          data={"meeting_number": meeting.get("meetingNumber"), "host_email": meeting.get("hostEmail"),
                                HOST_ACCOUNT: meeting.get("hostEmail"),
                                "site_url": meeting.get("siteUrl"), "cohosts": cohosts})

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """A meeting series (one occurrence) with the co-instructors invited as cohosts, tagged with the session
        (`integrationTags`). Webex has no idempotency key: when an earlier create may have reached Webex without
        its answer reaching us (`spec.may_exist`), the series it made is found by that tag and updated instead."""
        tag = session_tag(spec.session_key)
        if spec.may_exist:
            found = await self._find_tagged(tag, spec)
            if found is not None:
                log.info("webex: meeting %s of session %s already existed (an earlier create's answer was lost); "
                         "updated in place", found["id"], spec.session_key)
                return await self.update_meeting(self._ref(found, []), spec)
        body = self._body(spec)
        body["integrationTags"] = [tag]
        body["sendEmail"] = False  # the LMS, not Webex, talks to people
        body["invitees"] = [{"email": c.email, "displayName": f"{c.first_name} {c.last_name}".strip() or c.email,
                             "coHost": True} for c in spec.co_hosts]
        meeting = await self.client.create_meeting(body)
        log.debug("webex: meeting %s created (session %s)", meeting.get("id"), spec.session_key)
        return self._ref(meeting, [c.email.lower() for c in spec.co_hosts])

    async def _find_tagged(self, tag: str, spec: MeetingSpec) -> dict[str, Any] | None:
        # The lost create had this spec's start; a day either side absorbs zone mistakes, not later edits.
        found = await self.client.find_series(tag, host=self._host(spec) if self.settings.act_for_hosts else None,
                                              start=spec.starts_at - timedelta(days=1),
                                              end=spec.starts_at + timedelta(days=1))
        return found[0] if found else None

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """In place (PATCH): the webLink never changes. New co-instructors are invited as cohosts; ones removed
        in the LMS stay invited at Webex (the invitees API would be needed to drop them)."""
        updated = await self.client.update_meeting(meeting.meeting_id, self._body(spec))
        known = list(meeting.data.get("cohosts") or [])
        host = self._host(spec) if self.settings.act_for_hosts else None
        for cohost in spec.co_hosts:
            if cohost.email.lower() not in known:
                name = f"{cohost.first_name} {cohost.last_name}".strip() or cohost.email
                await self.client.add_invitee(meeting.meeting_id, cohost.email, name, cohost=True, host=host)
                known.append(cohost.email.lower())
        return self._ref(updated, known)

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        try:
            current = await self.client.get_meeting(meeting.meeting_id, host=self._ref_host(meeting), budget=BULK)
        except ProviderApiError as err:
            if err.http_status in (404, 410):
                return None
            raise
        return MeetingFacts(title=current.get("title"), starts_at=_iso(current.get("start")),
                            ends_at=_iso(current.get("end")))

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        await self.client.delete_meeting(meeting.meeting_id, host=self._ref_host(meeting), missing_ok=True)

    def _ref_host(self, meeting: MeetingRef) -> str | None:
        host = meeting.data.get("host_email")
        return str(host) if host and self.settings.act_for_hosts else None

    # --- launches --------------------------------------------------------------------------------------------

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """A link made for this person by `POST /meetings/join`: the start link for the host and cohosts, the join
        link for learners. Links expire (link_minutes), so a previous one is reused only while it stays valid."""
        if previous is not None and self._still_valid(previous, meeting, person, role):
            return previous
        try:
            links = await self.client.join_links(meeting.meeting_id, email=person.email,
                                                 display_name=person.display_name, host=self._ref_host(meeting),
                                                 budget=LAUNCH_BUDGET)
            starts = role in (Role.HOST, Role.COHOST) and links.get("startLink")
            url = links.get("startLink") if starts else links.get("joinLink")
            if not isinstance(url, str) or not url:
                raise ProviderFailed("webex", "Webex answered without a joinLink")
        except (ProviderFailed, TimeoutError) as err:
            reason = getattr(err, "message", None) or "Webex did not answer within the launch budget"
            log.warning("webex: no personal link for meeting %s (%s)", meeting.meeting_id, reason)
            return LaunchLink(url=meeting.join_url, personal=False, note=f"personal link failed: {reason}",
                              identity={"meeting_id": meeting.meeting_id, "fallback": "shared_link"})
        return LaunchLink(url=url, personal=True,
                          identity={"email": person.email.lower(), "display_name": person.display_name,
                                    "meeting_id": meeting.meeting_id, "webex_role": role.value,
                                    "expires_at": links.get("expiration")})

    def _still_valid(self, previous: LaunchLink, meeting: MeetingRef, person: Person, role: Role) -> bool:
        identity = previous.identity
        expires = _iso(identity.get("expires_at"))
        return (previous.personal and identity.get("meeting_id") == meeting.meeting_id
                and identity.get("email") == person.email.lower() and identity.get("webex_role") == role.value
                and expires is not None and expires - LINK_REUSE_MARGIN > self._now())

    # --- attendance ------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """One segment per device join of every participant of every held instance. Complete once at least one
        instance has ended and none is still running (Webex fills join/leave times in after the end)."""
        host = self._ref_host(meeting)
        instances = [i async for i in self.client.meeting_instances(meeting.meeting_id, host=host)]
        if not instances:
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=REPORT_DELAY_SECONDS)
        segments: list[ParticipantSegment] = []
        for instance in instances:
            instance_id = str(instance["id"])
            async for participant in self.client.participants(instance_id, host=host):
                segments.extend(_device_segments(participant, instance_id))
        complete = all(instance.get("state") in ENDED_STATES for instance in instances)
        return AttendanceReport(segments=tuple(segments), complete=complete,
                                retry_after_seconds=None if complete else REPORT_DELAY_SECONDS)

    def health(self) -> list[HealthItem]:
        return self.client.http.health()

    async def check(self) -> AccountCheck:
        await self.client.find_person("viltbridge-doctor@example.invalid")  # renews the token first if needed
        return AccountCheck("token valid; GET /people answered", self.client.http.clock_offset())

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return EXTENDED_OPTIONS

    # --- webhooks --------------------------------------------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else None
        webhooks.verify_signature(raw_body, headers, secret)
        event = webhooks.parse_event(raw_body, now)
        stored = ProviderEvent(dedupe_key=event.dedupe_key, meeting_id=event.meeting_id, event=event.event,
                               occurred_at=event.occurred_at, raw=raw_body.decode("utf-8"))
        return WebhookDelivery(reply=None, events=(stored,))

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        parsed = [webhooks.parse_event(event.raw.encode("utf-8"), event.occurred_at) for event in events]
        return webhooks.segments_from_events(parsed)

    async def aclose(self) -> None:
        await self.client.aclose()


def _device_segments(participant: Mapping[str, Any], instance_id: str) -> list[ParticipantSegment]:
    """Each device entry is one join (§3.7); a participant without devices gives one segment from its own times."""
    joins = [d for d in participant.get("devices") or [] if isinstance(d, Mapping)] or [participant]
    evidence = {key: participant[key] for key in ("id", "invitee", "host", "coHost", "state") if key in participant}
    segments = []
    for join in joins:
        joined = _iso(join.get("joinedTime"))
        if joined is None:
            continue  # still running and not filled in yet: the next collection will have it
        device = {key: join[key] for key in ("correlationId", "deviceType", "audioType") if key in join}
        segments.append(ParticipantSegment(
            participant_key=str(participant.get("id") or participant.get("email")), joined_at=joined,
            left_at=_iso(join.get("leftTime")), email=participant.get("email") or None,
            display_name=participant.get("displayName") or None, evidence={**evidence, **device},
            instance=instance_id))
    return segments
