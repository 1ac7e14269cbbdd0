"""The GoTo Training provider: one training per session part, scheduled by the connection's organizer (other
instructors become co-organizers when they are organizers on the same account), a fresh host start link for
instructors on every click, a personal registrant join link for every learner, attendance from GoTo's session
reports (docs/providers.md §5.3).

Identity first: a learner's link is a registrant link made for their LMS email, so the registrant key
(`personal_id`) ties every report row to them; the report gives only email and names, so the email is mapped back
to the registrant key through the training's registrants.

Decisions (GoTo documents none of these; change them only with a reason here):
- A part = one training with one `times` entry; the training's registration page is the meeting's `join_url`
  (GoTo returns no URL for a training; its links have the form of `registration_url`). It never changes: names,
  descriptions and times are updated in place (`nameDescription`, `times`).
- GoTo notifies registrants and trainers of new times by default; viltbridge sends `notifyRegistrants` and
  `notifyTrainers` false (the LMS informs people) unless the connection sets `notify_on_reschedule`. Confirmation
  emails are off; web registration stays on, so a learner whose personal link could not be made in time can still
  register on GoTo's page (and is then matched by the email they type).
- GoTo has no idempotency key and no hidden field on a training, so each training's description ends with the
  session's mark (`[viltbridge:<connection>:<session>]`, nothing personal). A create retried after a lost answer
  (`spec.may_exist`) looks for that mark among the organizer's scheduled trainings and updates what it finds.
- Attendance is complete once GoTo reports at least one session of the training and the part ended more than
  `REPORT_SETTLE` ago (a training restarted within its slot makes another session; GoTo lists a session only
  after it has ended, some minutes late). Until then the report is partial and says when to ask again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden, InvalidInput, ProviderFailed
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
from viltbridge.providers.goto.client import GotoClient, goto_time
from viltbridge.providers.goto.settings import GotoSettings
from viltbridge.providers.http import BULK, INTERACTIVE, Budget, ProviderApiError

log = logging.getLogger("viltbridge.providers.goto")

NAME_LIMIT, DESCRIPTION_LIMIT = 100, 2048  # [L] GoTo publishes no limits for training names and descriptions
MARK_ROOM = 96  # characters of the description kept for the session's mark
# A learner's click must not wait long on GoTo: after this, GoTo's registration page (and the launch page asks
# again shortly).
LAUNCH_BUDGET = Budget(total=3.0, max_queue_wait=1.0, attempt_timeout=2.5, max_attempts=2, connect_timeout=2.0)
REGISTRATION_RETRY_SECONDS = 2.0
# Registrations ahead of the click in flight at once: enough to fill the background share of the limit when GoTo
# answers in a few hundred milliseconds.
REGISTER_AHEAD_AT_ONCE = 4
# GoTo lists a session in its reports only some minutes after it ended: ask again after this long.
REPORT_DELAY_SECONDS = 15 * 60
# Attendance is final this long after the part's scheduled end, once a report exists (see the module's docs).
REPORT_SETTLE = timedelta(minutes=30)
ORGANIZERS_TTL_SECONDS = 600.0  # the account's organizers change rarely: read them at most every ten minutes


def session_mark(session_key: str) -> str:
    """The session's mark at the end of its training's description: the key as it is when short (a connection
    number and the LMS session id, nothing personal), else a digest of it."""
    mark = f"[viltbridge:{session_key}]"
    if len(mark) <= MARK_ROOM - 2:
        return mark
    return f"[viltbridge:{hashlib.sha256(session_key.encode()).hexdigest()[:48]}]"


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class GotoProvider:
    kind = "goto"
    capabilities = Capabilities(
        per_user_links=True,
        webhooks=False,
        host_licences=True,
        recordings=False,  # GoTo records, but this adapter neither starts nor collects recordings
        attendance=AttendanceSource.REPORT,
        update_in_place=True,
        cancel=True,
        max_title_length=NAME_LIMIT,
        max_description_length=DESCRIPTION_LIMIT - MARK_ROOM,
    )

    def __init__(self, settings: GotoSettings, client: GotoClient | None = None,
                 clock: Callable[[], datetime] | None = None,
                 on_settings_change: SettingsSink | None = None) -> None:
        self.settings = settings
        self.client = client or GotoClient(settings, on_settings_change=on_settings_change)
        self._now = clock or (lambda: datetime.now(UTC))
        self._organizers: tuple[float, dict[str, dict[str, Any]], bool] | None = None
        # How the account's organizers were last listed, for the health page (None: not listed yet).
        self._organizer_listing: HealthItem | None = None

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> GotoProvider:
        return cls(GotoSettings.from_settings(raw), on_settings_change=on_settings_change)

    # --- organizers (instructors) ------------------------------------------------------------------------------

    async def organizers(self, *, budget: Budget = INTERACTIVE) -> tuple[dict[str, dict[str, Any]], bool]:
        """The organizers who may run this connection's trainings, by lowercased email, and whether the account
        shares trainings (co-organizers). The Admin API's user listing (users with a G2T licence) is preferred;
        where it is refused (the authorising organizer is no account admin) the deprecated
        `GET /accounts/{accountKey}/organizers` is used, and the health page says so. When neither lists anyone,
        the only organizer is the one who authorised viltbridge (the token answer's `principal`)."""
        cached = self._organizers
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], cached[2]
        tokens = self.client.tokens
        await tokens.headers()  # the token answer names the organizer and the account
        account = self.settings.account_key
        found: dict[str, dict[str, Any]] = {}
        shared = False
        try:
            users = await self.client.admin_account_users(account, budget=budget)
            found = {str(u["email"]).strip().lower(): {"organizerKey": str(u["key"]), "email": u["email"],
                                                       "givenName": u.get("firstName"), "surname": u.get("lastName")}
                     for u in users if u.get("email") and u.get("key") and "G2T" in (u.get("products") or [])}
            # The Admin API does not say whether the account shares trainings; with one G2T user nobody else can
            # be a co-organizer anyway.
            shared = len(found) > 1
            self._organizer_listing = HealthItem(
                "organizer listing", True, f"GoTo Admin API, account {account}: {len(found)} GoTo Training users")
        except ProviderApiError as err:
            if err.http_status not in (403, 404):
                raise
            fallback = (f"GoTo's Admin API refused to list the users of account {account} ({err.provider_message}, "
                        f"HTTP {err.http_status}); organizers are read from the deprecated "
                        "GET /accounts/{accountKey}/organizers instead. Have a GoTo account admin authorise "
                        "viltbridge's OAuth client to use the Admin API before GoTo removes the old listing.")
            log.info("goto: %s", fallback)
            try:
                rows = await self.client.account_organizers(account, budget=budget)
                found = {str(r["email"]).strip().lower(): r for r in rows if r.get("email") and r.get("organizerKey")}
                shared = True
                self._organizer_listing = HealthItem("organizer listing", True, fallback)
            except ProviderApiError as old_err:
                if old_err.http_status not in (403, 404):
                    raise
                log.info("goto: account %s lists no organizers (%s); only the connection's organizer can teach",
                         account, old_err.provider_message)
                self._organizer_listing = HealthItem(
                    "organizer listing", False,
                    f"{fallback} That listing was refused too ({old_err.provider_message}), so only the connection's "
                    "organizer can teach and nobody can be a co-organizer.")
        if tokens.principal and tokens.principal not in found:
            found[tokens.principal] = {"organizerKey": self.settings.organizer_key, "email": tokens.principal}
        self._organizers = (time.monotonic() + ORGANIZERS_TTL_SECONDS, found, shared)
        return found, shared

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        """Active instructors must be organizers of the GoTo account (a GoTo Training licence). Organizers are
        managed in GoTo Admin, so nobody is created or deactivated from here."""
        if not instructor.active:
            return ProvisionedInstructor(provider_user_id=instructor.provider_user_id, licensed=False,
                                         data={"goto_organizer": "kept as it is"})
        organizers, shared = await self.organizers()
        row = organizers.get(instructor.email.strip().lower())
        if row is None:
            raise InvalidInput(self._not_an_organizer(instructor.email, organizers, shared))
        key = str(row["organizerKey"])
        role = "organizer" if key == self.settings.organizer_key else "co-organizer"
        return ProvisionedInstructor(provider_user_id=key, licensed=True, data={"goto_role": role})

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        """The (possibly new) email must belong to an organizer; names live in GoTo Admin, not here."""
        return await self.provision_instructor(instructor)

    def _not_an_organizer(self, email: str, organizers: Mapping[str, Any], shared: bool) -> str:
        known = ", ".join(sorted(organizers)) or "none found"
        if shared:
            return (f"{email} is not a GoTo Training organizer on this GoTo account (organizers: {known}). Only "
                    "organizers can teach trainings: give them a GoTo Training licence in GoTo Admin, then add the "
                    "instructor again.")
        return (f"{email} cannot teach on this GoTo Training connection: its account has one organizer ({known}) "
                "as far as viltbridge can see. Co-organizers need a multi-user GoTo account with sharing whose "
                "organizers viltbridge may list (account_key, authorised by an account admin). Teach as that "
                "organizer, or fix the account and add the instructor again.")

    async def _co_organizers(self, spec: MeetingSpec) -> tuple[dict[str, str], list[str]]:
        """Co-organizer keys by email for the session's instructors other than the connection's organizer, and the
        instructors who could not be made co-organizers (not organizers on the account)."""
        instructors = [person for person in (spec.host, *spec.co_hosts) if person is not None]
        keys: dict[str, str] = {}
        unresolved: list[str] = []
        organizers: dict[str, dict[str, Any]] | None = None
        for person in instructors:
            email = person.email.strip().lower()
            key = person.provider_user_id
            if not key:
                if organizers is None:
                    organizers, _ = await self.organizers()
                row = organizers.get(email)
                key = str(row["organizerKey"]) if row else None
            if key is None:
                unresolved.append(email)
            elif key != self.settings.organizer_key:
                keys[email] = key
        if unresolved:
            log.warning("goto: %s of session %s are not organizers on the GoTo account, so they cannot be "
                        "co-organizers; the training is run by organizer %s and they join as attendees",
                        ", ".join(unresolved), spec.session_key, self.settings.organizer_key)
        return keys, unresolved

    # --- trainings ---------------------------------------------------------------------------------------------

    def _zone(self, spec: MeetingSpec) -> str:
        try:
            ZoneInfo(spec.zone)
        except (ZoneInfoNotFoundError, ValueError):
            return self.settings.time_zone
        return spec.zone

    @staticmethod
    def _description(spec: MeetingSpec) -> str:
        mark = session_mark(spec.session_key)
        text = spec.description.strip()[:DESCRIPTION_LIMIT - MARK_ROOM]
        return f"{text}\n\n{mark}" if text else mark

    def _times(self, spec: MeetingSpec) -> list[dict[str, str]]:
        return [{"startDate": goto_time(spec.starts_at), "endDate": goto_time(spec.ends_at)}]

    def _ref(self, training_key: str, co_organizers: Mapping[str, str], unresolved: list[str]) -> MeetingRef:
        return MeetingRef(
            meeting_id=training_key,
            join_url=self.settings.registration_url.replace("{trainingKey}", training_key), host_url=None,
            data={"organizer_key": self.settings.organizer_key, HOST_ACCOUNT: self.settings.organizer_key,
                  "organizer_email": self.client.tokens.principal,
                  "co_organizers": dict(co_organizers), "not_co_organizers": list(unresolved)})

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        """A training of one session, marked with the session; when an earlier create may have reached GoTo
        without its answer reaching us (`spec.may_exist`), the training it made is found by that mark and updated
        instead of making a second one."""
        if spec.may_exist:
            found = await self._find_marked(spec)
            if found is not None:
                log.info("goto: training %s of session %s already existed (an earlier create's answer was lost); "
                         "updated in place", found["trainingKey"], spec.session_key)
                known = {str(o.get("email", "")).lower(): str(o["organizerKey"])
                         for o in found.get("organizers") or [] if o.get("organizerKey")
                         and str(o["organizerKey"]) != self.settings.organizer_key}
                return await self.update_meeting(self._ref(str(found["trainingKey"]), known, []), spec)
        co_organizers, unresolved = await self._co_organizers(spec)
        body: dict[str, Any] = {
            "name": spec.title[:NAME_LIMIT], "description": self._description(spec), "timeZone": self._zone(spec),
            "times": self._times(spec),
            "registrationSettings": {"disableWebRegistration": False, "disableConfirmationEmail": True},
        }
        if co_organizers:
            body["organizers"] = [int(key) for key in dict.fromkeys(co_organizers.values())]
        training_key = await self.client.create_training(body)
        log.debug("goto: training %s created (session %s)", training_key, spec.session_key)
        return self._ref(training_key, co_organizers, unresolved)

    async def _find_marked(self, spec: MeetingSpec) -> dict[str, Any] | None:
        mark = session_mark(spec.session_key)
        for training in await self.client.list_trainings():
            if str(training.get("description") or "").rstrip().endswith(mark) and training.get("trainingKey"):
                return training
        return None

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        """In place: name and description, then times (nobody notified unless the connection says so), then the
        co-organizers when they changed. The registration page and every registrant's join link stay the same."""
        key = meeting.meeting_id
        await self.client.update_name_description(key, spec.title[:NAME_LIMIT], self._description(spec))
        await self.client.update_times(key, self._zone(spec), self._times(spec),
                                       notify=self.settings.notify_on_reschedule)
        co_organizers, unresolved = await self._co_organizers(spec)
        before = dict(meeting.data.get("co_organizers") or {})
        if sorted(set(co_organizers.values())) != sorted(set(before.values())):
            await self.client.update_organizers(key, list(dict.fromkeys(co_organizers.values())))
        return self._ref(key, co_organizers, unresolved)

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        try:
            training = await self.client.get_training(meeting.meeting_id, budget=BULK)
        except ProviderApiError as err:
            if err.http_status == 404:
                return None
            raise
        times = [(_iso(t.get("startDate")), _iso(t.get("endDate"))) for t in training.get("times") or []
                 if isinstance(t, Mapping)]
        starts = [s for s, _ in times if s is not None]
        ends = [e for _, e in times if e is not None]
        return MeetingFacts(title=training.get("name"), starts_at=min(starts) if starts else None,
                            ends_at=max(ends) if ends else None)

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        """`DELETE` (GoTo emails nobody); a training already gone (404) is cancelled enough."""
        await self.client.delete_training(meeting.meeting_id, missing_ok=True)

    # --- launches ----------------------------------------------------------------------------------------------

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        """Instructors: a fresh host start link on every click (never stored: it starts the training without a
        login). Co-instructors who are not organizers on the account, and learners: their own registrant link."""
        email = person.email.strip().lower()
        organizers = {*(meeting.data.get("co_organizers") or {}), meeting.data.get("organizer_email")}
        if role is Role.HOST or (role is Role.COHOST and email in organizers):
            return await self._start_link(meeting, role)
        note = None
        if role is Role.COHOST:
            note = (f"{person.email} is not an organizer on the GoTo account, so GoTo cannot make them a "
                    "co-organizer: they join as an attendee")
        if (previous is not None and previous.personal and previous.identity.get(PERSONAL_ID)
                and previous.identity.get("training_key") == meeting.meeting_id
                and previous.identity.get("email") == email):
            return previous  # registrant links do not expire: no quota spent on a second click
        try:
            registrant = await self._registrant(meeting.meeting_id, person)
        except (ProviderFailed, TimeoutError) as err:
            reason = getattr(err, "message", None) or "GoTo did not answer within the launch budget"
            log.warning("goto: no registrant link for training %s (%s)", meeting.meeting_id, reason)
            return LaunchLink(url=meeting.join_url, personal=False, note=f"registration failed: {reason}",
                              identity={"training_key": meeting.meeting_id, "fallback": "registration_page"},
                              retry_after_seconds=REGISTRATION_RETRY_SECONDS)
        return _registrant_link(meeting, email, registrant, note)

    async def _start_link(self, meeting: MeetingRef, role: Role) -> LaunchLink:
        try:
            url = await self.client.start_url(meeting.meeting_id, budget=LAUNCH_BUDGET)
        except (ProviderFailed, TimeoutError) as err:
            reason = getattr(err, "message", None) or "GoTo did not answer within the launch budget"
            log.warning("goto: no start link for training %s (%s)", meeting.meeting_id, reason)
            return LaunchLink(url=meeting.join_url, personal=False, note=f"start link unavailable: {reason}",
                              identity={"goto_role": "organizer", "training_key": meeting.meeting_id},
                              retry_after_seconds=REGISTRATION_RETRY_SECONDS)
        # Not `personal`: a start link is never reused from the ledger (it starts the training for its holder).
        return LaunchLink(url=url, personal=False,
                          identity={"goto_role": "organizer" if role is Role.HOST else "co-organizer",
                                    "training_key": meeting.meeting_id})

    async def _registrant(self, training_key: str, person: Person, *, budget: Budget = LAUNCH_BUDGET,
                          background: bool = False,
                          listed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Register `person`; when GoTo says the email is registered already (409), reuse that registration, found
        in GoTo's registrant list (`listed`: the list as read earlier by the caller, filled on first need)."""
        given = (person.first_name or "").strip() or person.email.split("@")[0]
        surname = (person.last_name or "").strip() or "-"
        email = person.email.strip().lower()
        try:
            return await self.client.register(training_key, person.email.strip(), given, surname, budget=budget,
                                              background=background)
        except ProviderApiError as err:
            if err.http_status != 409:
                raise
        listed = {} if listed is None else listed
        if email not in listed:
            rows = await self.client.registrants(training_key, budget=budget, background=background)
            listed.update({str(row.get("email", "")).strip().lower(): row for row in rows if row.get("joinUrl")})
        if email in listed:
            return listed[email]
        # GoTo's registrant list may lag up to two hours behind its registrations (§5.3).
        raise ProviderFailed("goto", f"GoTo says {person.email} is registered for training {training_key} but does "
                                     "not list the registration yet.")

    async def register_ahead(self, meeting: MeetingRef, people: list[Person]) -> list[tuple[Person, LaunchLink]]:
        """Registrants made ahead of the click (`core.provider.RegistersAhead`): a few calls at a time within the
        background share of GoTo's limit (`GotoClient.background_quota`), so learners clicking meanwhile keep the
        rest. Someone registered already (a run whose answers were lost) is found in GoTo's registrant list, read
        once per run. A failure after some registrations returns those; a failure before any is raised."""
        made: list[tuple[Person, LaunchLink]] = []
        listed: dict[str, dict[str, Any]] = {}
        for start in range(0, len(people), REGISTER_AHEAD_AT_ONCE):
            batch = people[start:start + REGISTER_AHEAD_AT_ONCE]
            answers = await asyncio.gather(
                *(self._registrant(meeting.meeting_id, person, budget=BULK, background=True, listed=listed)
                  for person in batch), return_exceptions=True)
            failure: BaseException | None = None
            for person, answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    failure = failure or answer
                else:
                    made.append((person, _registrant_link(meeting, person.email.strip().lower(), answer, None)))
            if failure is not None:
                if not made or not isinstance(failure, ProviderFailed | TimeoutError):
                    raise failure
                log.warning("goto: registered %d learner(s) ahead for training %s, then stopped: %s", len(made),
                            meeting.meeting_id, getattr(failure, "message", None) or failure)
                break
        return made

    # --- attendance --------------------------------------------------------------------------------------------

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        """One segment per attendance period (`inSessionTimes`) of every reported session; registrants who did not
        attend give none. Rows are tied to registrants by email (GoTo's report names no registrant key)."""
        now = self._now()
        settled_at = spec.ends_at + REPORT_SETTLE
        try:
            sessions = await self.client.report_sessions(meeting.meeting_id)
        except ProviderApiError as err:
            if err.http_status != 404:
                raise
            log.info("goto: no report for training %s (%s)", meeting.meeting_id, err.provider_message)
            sessions = []
        if not sessions:
            first_look = max(REPORT_DELAY_SECONDS, int((spec.ends_at - now).total_seconds()) + REPORT_DELAY_SECONDS)
            return AttendanceReport(segments=(), complete=False, retry_after_seconds=first_look)
        keys: dict[str, str] | None = None
        segments: list[ParticipantSegment] = []
        for session in sessions:
            session_key = str(session.get("sessionKey") or "")
            if not session_key:
                continue
            for row in await self.client.session_attendees(session_key):
                periods = [p for p in row.get("inSessionTimes") or [] if isinstance(p, Mapping)]
                if not periods:
                    continue  # a registrant who did not attend
                if keys is None:
                    keys = await self._registrant_keys(meeting.meeting_id)
                segments.extend(_segments(row, periods, session_key, keys))
        complete = now >= settled_at
        wait = None if complete else max(60, int((settled_at - now).total_seconds()))
        return AttendanceReport(segments=tuple(segments), complete=complete, retry_after_seconds=wait)

    async def _registrant_keys(self, training_key: str) -> dict[str, str]:
        try:
            rows = await self.client.registrants(training_key, budget=BULK)
        except ProviderApiError as err:
            if err.http_status == 404:  # the training was deleted after it ran: rows are matched by email
                return {}
            raise
        return {str(r["email"]).strip().lower(): str(r["registrantKey"]) for r in rows
                if r.get("email") and r.get("registrantKey")}

    def health(self) -> list[HealthItem]:
        listing = self._organizer_listing
        return [*self.client.http.health(), *([listing] if listing is not None else [])]

    async def check(self) -> AccountCheck:
        await self.client.tokens.headers()
        trainings = await self.client.list_trainings()
        return AccountCheck(f"token valid; GET /trainings answered ({len(trainings)} trainings)",
                            self.client.http.clock_offset())

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return ()

    # --- webhooks ----------------------------------------------------------------------------------------------

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        raise Forbidden("GoTo Training connections take no webhooks: attendance comes from GoTo's session reports.")

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        return []

    async def aclose(self) -> None:
        await self.client.aclose()


def _registrant_link(meeting: MeetingRef, email: str, registrant: Mapping[str, Any], note: str | None) -> LaunchLink:
    """A learner's registrant join link; its identity lets a later click reuse it for the same training only."""
    return LaunchLink(url=str(registrant["joinUrl"]), personal=True, note=note,
                      identity={PERSONAL_ID: str(registrant["registrantKey"]),
                                "registrant_key": str(registrant["registrantKey"]),
                                "training_key": meeting.meeting_id, "email": email})


def _segments(row: Mapping[str, Any], periods: list[Mapping[str, Any]], session_key: str,
              keys: Mapping[str, str]) -> list[ParticipantSegment]:
    email = str(row.get("email") or "").strip() or None
    name = " ".join(str(row.get(part) or "").strip() for part in ("givenName", "surname")).strip() or None
    registrant = keys.get(email.lower()) if email else None
    evidence: dict[str, Any] = {"session_key": session_key, "time_in_session_minutes": row.get("timeInSession")}
    if registrant:
        evidence[PERSONAL_ID] = registrant
    segments = []
    for period in periods:
        joined = _iso(period.get("joinTime"))
        if joined is None:
            continue
        segments.append(ParticipantSegment(
            participant_key=registrant or f"email:{(email or name or '?').lower()}", joined_at=joined,
            left_at=_iso(period.get("leaveTime")), email=email, display_name=name,
            evidence={**evidence, "time_in_part_minutes": period.get("timeInPartOfSession")},
            instance=session_key))
    return segments
