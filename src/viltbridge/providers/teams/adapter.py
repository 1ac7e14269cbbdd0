"""The Microsoft Teams provider (Microsoft Graph): one standalone online meeting per part, organised by the
instructor's Microsoft 365 user, co-instructors as co-organizers, attendance from Graph's attendance reports.

Teams has one join link per meeting, no personal links and no host start link (docs/providers.md §2.3): everyone
launches through viltbridge's launch redirect onto the meeting's `joinWebUrl`, and that redirect (the launch
ledger) is the identity evidence. Attendance reports name tenant users by email; guests only by the name they
typed, which the attendance matching has to work with.

With `calendar_events` on, each part is instead an Outlook calendar event with a Teams meeting on the instructor's
calendar (docs/providers.md §2.4): co-instructors are invited as attendees (events cannot make co-organizers),
the description becomes the invitation text, and the extended options (online-meeting settings) are not applied.
Attendance then goes through the event's online meeting, found by its join URL. Which route a meeting took is kept
in its `MeetingRef.data["route"]`, so switching the setting later does not strand existing meetings.

No webhooks: Graph's change notifications carry no verifiable signature for basic notifications (a `clientState`
echo only) and have no v1.0 participant join/leave resource (docs/providers.md §2.6), so attendance comes from the
reports after each run of the meeting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from viltbridge.core.errors import Forbidden, InvalidInput, ProviderFailed
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
from viltbridge.providers.http import BULK, ProviderApiError
from viltbridge.providers.teams.client import TeamsClient, graph_time, parse_graph_time
from viltbridge.providers.teams.settings import TeamsSettings

log = logging.getLogger("viltbridge.providers.teams")

# Graph keeps only the 50 most recent attendance reports of a meeting (docs/providers.md §2.5).
MAX_REPORTS = 50
# Reports appear some minutes after a run ends [L]: ask again after this long while there is none.
REPORT_RETRY_SECONDS = 15 * 60
# [L] Graph documents no subject limit for onlineMeetings; Outlook's event subject takes 255 characters.
MAX_SUBJECT = 255

EXTENDED_OPTIONS = (
    ExtendedOption("lobby_everyone", "Everyone skips the lobby",
                   "Guests from outside the organisation join without waiting in the lobby", False),
    ExtendedOption("record_automatically", "Record automatically", "Teams records from the start", False),
    ExtendedOption("announce_entry_exit", "Announce joins and leaves", "Teams announces people as they come and go",
                   False),
    ExtendedOption("meeting_chat", "Meeting chat", "Learners may use the meeting chat", True),
)


class TeamsProvider:
    kind = "teams"
    capabilities = Capabilities(
        per_user_links=False,
        webhooks=False,
        host_licences=True,  # organizers must be Teams-licensed users of the tenant
        recordings=True,
        attendance=AttendanceSource.REPORT,
        update_in_place=True,
        cancel=True,
        max_title_length=MAX_SUBJECT,
        max_description_length=None,  # an online meeting has no description (joinInformation is Teams' own)
    )

    def __init__(self, settings: TeamsSettings, client: TeamsClient | None = None) -> None:
        self.settings = settings
        self.client = client or TeamsClient(settings)

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> TeamsProvider:
        return cls(TeamsSettings.from_settings(raw))  # its settings never change by themselves

    # --- instructors -----------------------------------------------------------------------------------------

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Active instructors must be enabled users of the tenant (viltbridge creates no Microsoft 365 users).
        Inactive ones are left as they are: their account belongs to the organisation, not to the LMS."""
        if not instructor.active:
            return ProvisionedInstructor(provider_user_id=instructor.provider_user_id, licensed=False,
                                         data={"teams_user": "kept as it is"})
        user = await self._user(instructor.email)
        if user.get("accountEnabled") is False:
            raise InvalidInput(f"{instructor.email} is blocked from signing in to Microsoft 365, so they cannot "
                               "organise Teams meetings. Unblock them in the Microsoft 365 admin center, then add "
                               "the instructor again.")
        return ProvisionedInstructor(provider_user_id=str(user["id"]), licensed=True,
                                     data={"upn": user.get("userPrincipalName"), "mail": user.get("mail")})

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Names live in Microsoft Entra ID, not here: only the (possibly new) email is validated."""
        return await self.provision_instructor(instructor)

    async def _user(self, email: str) -> dict[str, Any]:
        """The tenant user Cornerstone means by `email`. `GET /users/{upn}` takes only the userPrincipalName, and
        in many tenants people's mail address differs from it (UPN ada.l@acme.onmicrosoft.com, mail
        ada.lovelace@acme.example), while Cornerstone knows the mail address: so the UPN first, then the primary
        mail address, then the mailbox's other addresses (aliases)."""
        try:
            return await self.client.get_user(email)
        except ProviderApiError as err:
            if err.http_status != 404:
                raise
        for lookup in (self.client.find_users_by_mail, self.client.find_users_by_proxy_address):
            found = await lookup(email)
            if len(found) > 1:
                names = ", ".join(str(user.get("userPrincipalName")) for user in found)
                raise InvalidInput(f"{email} belongs to more than one Microsoft 365 user ({names}), so viltbridge "
                                   "cannot tell which one organises the meetings. Remove the address from all but "
                                   "one of them, or give the instructor their userPrincipalName as email in "
                                   "Cornerstone.")
            if found:
                return found[0]
        # A correctable input problem (400 to the LMS), not an outage.
        raise InvalidInput(f"{email} is not a user in the Microsoft 365 tenant {self.settings.tenant_id}: no user has "
                           "it as their userPrincipalName, mail address or one of their email aliases. Add the "
                           "instructor to Microsoft 365 or add this address to their mailbox as an alias, or change "
                           "the instructor's email in Cornerstone to their Microsoft 365 sign-in name.")

    async def _user_id(self, instructor: InstructorSpec) -> str:
        # The id from provisioning saves a call; the email is the fallback for sessions made before provisioning.
        if instructor.provider_user_id:
            return instructor.provider_user_id
        return str((await self._user(instructor.email))["id"])

    # --- meetings --------------------------------------------------------------------------------------------

    @staticmethod
    def _host(spec: MeetingSpec) -> InstructorSpec:
        if spec.host is None:
            raise InvalidInput("A Teams meeting is organised by an instructor's Microsoft 365 user, and this session "
                               "names no instructor. Send InstructorEmails with the session.")
        return spec.host

    async def _co_organizers(self, spec: MeetingSpec, organizer_id: str) -> list[dict[str, Any]]:
        attendees = []
        for cohost in spec.co_hosts:
            user_id = await self._user_id(cohost)
            if user_id != organizer_id:  # the organizer is not also listed as an attendee
                attendees.append({"upn": cohost.email, "role": "coorganizer", "identity": {"user": {"id": user_id}}})
        return attendees

    def _options(self, spec: MeetingSpec) -> dict[str, Any]:
        chosen = {option.id: bool(spec.extended_options.get(option.id, option.default)) for option in EXTENDED_OPTIONS}
        return {
            "lobbyBypassSettings": {"scope": "everyone" if chosen["lobby_everyone"] else "organization",
                                    "isDialInBypassEnabled": False},
            # Only the organizer and co-organizers present; learners cannot take over the screen.
            "allowedPresenters": "roleIsPresenter",
            "recordAutomatically": chosen["record_automatically"],
            "isEntryExitAnnounced": chosen["announce_entry_exit"],
            "allowMeetingChat": "enabled" if chosen["meeting_chat"] else "disabled",
        }

    async def _core(self, spec: MeetingSpec, organizer_id: str) -> dict[str, Any]:
        """What createOrGet documents besides `externalId`: subject, times and participants."""
        return {
            "subject": spec.title[:MAX_SUBJECT],
            "startDateTime": graph_time(spec.starts_at),
            "endDateTime": graph_time(spec.ends_at),  # Graph wants both times together on every change
            "participants": {"attendees": await self._co_organizers(spec, organizer_id)},  # always the full list
        }

    async def _body(self, spec: MeetingSpec, organizer_id: str) -> dict[str, Any]:
        """A PATCH bringing the whole meeting in line with the spec, meeting options included."""
        return {**await self._core(spec, organizer_id), **self._options(spec)}

    async def _event_body(self, spec: MeetingSpec) -> dict[str, Any]:
        def when(moment: datetime) -> dict[str, str]:
            return {"dateTime": graph_time(moment).removesuffix("Z"), "timeZone": "UTC"}

        return {
            "subject": spec.title[:MAX_SUBJECT],
            "body": {"contentType": "text", "content": spec.description},
            "start": when(spec.starts_at), "end": when(spec.ends_at),
            "attendees": [{"emailAddress": {"address": cohost.email,
                                            "name": f"{cohost.first_name} {cohost.last_name}".strip()},
                           "type": "required"} for cohost in spec.co_hosts],
            "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness",
            "allowNewTimeProposals": False,  # the LMS owns the schedule
        }

    @staticmethod
    def _event_ref(event: Mapping[str, Any], organizer_id: str, organizer_upn: str) -> MeetingRef:
        join_url = (event.get("onlineMeeting") or {}).get("joinUrl")
        if not join_url:
            raise ProviderFailed("teams", f"Microsoft Graph made the calendar event {event.get('id')} without a Teams "
                                          "meeting; check that Teams meetings are allowed for the instructor.")
        return MeetingRef(meeting_id=str(event["id"]), join_url=str(join_url), host_url=None,
                          data={"route": "event", "organizer_id": organizer_id, HOST_ACCOUNT: organizer_id,
                                "organizer_upn": organizer_upn,
                                "ical_uid": event.get("iCalUId")})

    @staticmethod
    def _ref(meeting: Mapping[str, Any]) -> MeetingRef:
        organizer = (meeting.get("participants") or {}).get("organizer") or {}
        settings = meeting.get("joinMeetingIdSettings") or {}
        organizer_id = ((organizer.get("identity") or {}).get("user") or {}).get("id")
        return MeetingRef(
            meeting_id=str(meeting["id"]), join_url=str(meeting["joinWebUrl"]), host_url=None,
            data={"route": "online_meeting", "organizer_id": organizer_id, HOST_ACCOUNT: organizer_id,
                  "organizer_upn": organizer.get("upn"), "join_meeting_id": settings.get("joinMeetingId")},
        )

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """createOrGet keyed by the session key: a create repeated after a lost answer (`spec.may_exist`) gets the
        meeting the first one made, which is then brought in line with the spec."""
        host = self._host(spec)
        organizer_id = await self._user_id(host)
        if self.settings.calendar_events:
            # transactionId: Graph answers a repeated POST with the event the first one made.
            body = {**await self._event_body(spec), "transactionId": spec.session_key}
            event = await self.client.create_event(organizer_id, body, organizer=host.email)
            return self._event_ref(event, organizer_id, host.email)
        # createOrGet documents only subject, times, participants and externalId: the meeting options (lobby,
        # presenters, recording, entry announcements, chat) are not applied from its body, so they follow in a
        # PATCH. Should that PATCH fail, the retried create finds this meeting (200) and PATCHes everything.
        body = {**await self._core(spec, organizer_id), "externalId": spec.session_key}
        meeting, created = await self.client.create_or_get_meeting(organizer_id, body, organizer=host.email)
        if created:
            changes = self._options(spec)
        else:
            log.info("teams: meeting %s of session %s already existed (an earlier create's answer was lost); "
                     "updated in place", meeting.get("id"), spec.session_key)
            changes = {**{key: value for key, value in body.items() if key != "externalId"}, **self._options(spec)}
        meeting = await self.client.update_meeting(organizer_id, str(meeting["id"]), changes)
        return self._ref(meeting)

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """In place (PATCH, same join link), except for a new primary instructor: Graph cannot change a meeting's
        organizer, so the new organizer gets a new meeting and the old one is deleted."""
        organizer_id = await self._user_id(self._host(spec))
        if meeting.data.get("organizer_id") and meeting.data["organizer_id"] != organizer_id:
            replacement = await self.create_meeting(spec)
            await self.cancel_meeting(meeting)
            log.info("teams: meeting %s moved to a new organizer as meeting %s", meeting.meeting_id,
                     replacement.meeting_id)
            return replacement
        if _is_event(meeting):
            event = await self.client.update_event(organizer_id, meeting.meeting_id, await self._event_body(spec))
            return self._event_ref(event, organizer_id, str(meeting.data.get("organizer_upn") or ""))
        changes = await self._body(spec, organizer_id)
        return self._ref(await self.client.update_meeting(organizer_id, meeting.meeting_id, changes))

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        """Subject and times as Graph holds them now; None when the meeting is gone (404)."""
        organizer_id = self._organizer_id(meeting)
        try:
            if _is_event(meeting):
                event = await self.client.get_event(organizer_id, meeting.meeting_id, budget=BULK)
                return MeetingFacts(title=event.get("subject"),
                                    starts_at=parse_graph_time((event.get("start") or {}).get("dateTime")),
                                    ends_at=parse_graph_time((event.get("end") or {}).get("dateTime")))
            current = await self.client.get_meeting(organizer_id, meeting.meeting_id, budget=BULK)
        except ProviderApiError as err:
            if err.http_status == 404:
                return None
            raise
        return MeetingFacts(title=current.get("subject"), starts_at=parse_graph_time(current.get("startDateTime")),
                            ends_at=parse_graph_time(current.get("endDateTime")))

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        if _is_event(meeting):  # cancelled, not deleted: invited co-instructors get the cancellation
            await self.client.cancel_event(self._organizer_id(meeting), meeting.meeting_id,
                                           "This class session was cancelled.", missing_ok=True)
            return
        await self.client.delete_meeting(self._organizer_id(meeting), meeting.meeting_id, missing_ok=True)

    @staticmethod
    def _organizer_id(meeting: MeetingRef) -> str:
        organizer = meeting.data.get("organizer_id")
        if not organizer:
            raise InvalidInput(f"The Teams meeting {meeting.meeting_id} has no organizer on record, so Graph cannot "
                               "be asked about it.")
        return str(organizer)

    # --- launches --------------------------------------------------------------------------------------------

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """The meeting's one join link for everyone, without a Graph call: instructors sign in to Teams and get
        their organizer or co-organizer powers there; learners are identified by this launch itself."""
        identity = {"teams_role": role.value, "meeting_id": meeting.meeting_id}
        note = None if role is not Role.ATTENDEE else "Teams has no personal join links; identity is the launch"
        return LaunchLink(url=meeting.join_url, personal=False, identity=identity, note=note)

    # --- attendance ------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """Every attendance report (one per run of the meeting), one segment per attendance interval, `instance`
        the report's id. Complete once a report exists and the session's scheduled end has passed."""
        organizer_id = self._organizer_id(meeting)
        meeting_id = await self._online_meeting_id(meeting, organizer_id)
        reports = [] if meeting_id is None else [
            report async for report in self.client.attendance_reports(organizer_id, meeting_id)]
        if not reports:
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=REPORT_RETRY_SECONDS)
        if len(reports) >= MAX_REPORTS:
            log.warning("teams: meeting %s has %d attendance reports, Graph's maximum: runs older than these are no "
                        "longer reported", meeting.meeting_id, len(reports))
        segments: list[ParticipantSegment] = []
        for report in reports:
            report_id = str(report["id"])
            async for record in self.client.attendance_records(organizer_id, str(meeting_id), report_id):
                segments.extend(_segments(record, report_id))
        complete = datetime.now(UTC) >= spec.ends_at
        return AttendanceReport(segments=tuple(segments), complete=complete,
                                retry_after_seconds=None if complete else REPORT_RETRY_SECONDS)

    async def _online_meeting_id(self, meeting: MeetingRef, organizer_id: str) -> str | None:
        """The online meeting attendance hangs off: the meeting itself, or the one behind a calendar event."""
        if not _is_event(meeting):
            return meeting.meeting_id
        found = await self.client.find_meeting_by_join_url(organizer_id, meeting.join_url)
        return str(found["id"]) if found else None

    def health(self) -> list[HealthItem]:
        return self.client.http.health()

    async def check(self) -> AccountCheck:
        # Any directory read proves the app's token and its User.Read.All consent; an address nobody has costs the
        # same one call and returns an empty list.
        await self.client.find_users_by_mail("viltbridge-doctor@example.invalid")
        return AccountCheck("token issued; GET /users answered", self.client.http.clock_offset())

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return EXTENDED_OPTIONS

    # --- webhooks (none: see the module docstring) -----------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        raise Forbidden("Teams connections take no webhooks: attendance comes from Graph's attendance reports.")

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        return []

    async def aclose(self) -> None:
        await self.client.aclose()


def _is_event(meeting: MeetingRef) -> bool:
    return meeting.data.get("route") == "event"


def _segments(record: Mapping[str, Any], report_id: str) -> list[ParticipantSegment]:
    """One segment per interval of one attendance record (a person's several joins come as one record)."""
    identity = record.get("identity") or {}
    # Guests have no identity id (or a non-Entra one) and often no email: the record id keys them in this report.
    key = str(identity.get("id") or record.get("id"))
    evidence = {"record_id": record.get("id"), "role": record.get("role"), "identity_id": identity.get("id"),
                "tenant_id": identity.get("tenantId"), "report_id": report_id,
                "total_attendance_seconds": record.get("totalAttendanceInSeconds")}
    if record.get("emailAddress") and identity.get("id") and identity.get("tenantId"):
        # An Entra user (an identity id in a tenant; guests have neither): Microsoft signed them in under this
        # address, so it credits them even without a launch.
        evidence[EMAIL_VERIFIED_BY] = "Microsoft Teams"
    segments = []
    for interval in record.get("attendanceIntervals") or []:
        joined = parse_graph_time(interval.get("joinDateTime"))
        if joined is None:
            continue
        segments.append(ParticipantSegment(
            participant_key=key, joined_at=joined, left_at=parse_graph_time(interval.get("leaveDateTime")),
            email=record.get("emailAddress") or None, display_name=identity.get("displayName") or None,
            evidence={**evidence, "duration_seconds": interval.get("durationInSeconds")}, instance=report_id))
    return segments
