"""The simulated Microsoft 365 tenant: users, application access policies, online meetings, their runs and
attendance reports, tokens, throttling and a frozen clock. Plain Python, no HTTP (that is `server.py`).

Facts come from docs/providers.md §2; behaviour it does not pin down is marked [L] and kept configurable.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from viltbridge.providers.class_scenario import by_leaving_time, only_meeting, parse_class
from viltbridge.providers.serving import Fault, FaultPlan

__all__ = ["Fault", "GraphApiError", "GraphState", "SimConfig", "fault_error", "graph_timestamp"]


@dataclass(frozen=True)
class SimConfig:
    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    client_id: str = "0b6a4b3c-1d2e-4f50-8a9b-7c6d5e4f3a21"
    client_secret: str = "sim~client~secret"  # noqa: S105 - the simulator's own fake credential
    token_lifetime: int = 3599  # Graph says expires_in 3599 [H]; real lifetimes are randomised 60-90 min [M]
    records_page_size: int = 100  # [L] Graph does not document the attendanceRecords page size
    max_reports: int = 50  # "max 50 most recent" [H]
    start: datetime | None = None  # frozen clock; None follows real time
    # The error code of the missing-access-policy 403: "Forbidden" in the current docs [H]; tenants also report
    # "General" [M] (and older ones "Unauthorized" with other words), so tests can pick.
    access_policy_error_code: str = "Forbidden"


class GraphApiError(Exception):
    """Graph's error body: `{"error": {"code", "message", "innerError": {...}}}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self, now: datetime) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        return {"error": {"code": self.code, "message": self.message,
                          "innerError": {"date": now.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": request_id,
                                         "client-request-id": request_id}}}


def graph_timestamp(moment: datetime, tick: int = 0) -> str:
    """Seven fractional digits as Graph sends them; Graph counts in 100 ns ticks, so the seventh digit (`tick`) is
    whatever sub-microsecond remainder the real clock had."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{tick % 10}Z"


# Graph's codes for server-side failures (learn.microsoft.com/graph/errors): generalException for 500 and
# serviceNotAvailable for 503, which "may" carry Retry-After [H]; other statuses' codes are a guess [L].
SERVER_ERRORS = {
    500: ("generalException", "An unspecified error has occurred."),
    502: ("BadGateway", "The server received an invalid response from the upstream server."),
    503: ("serviceNotAvailable", "The service is not available. Try the request again after a delay. There may be a "
                                 "Retry-After header."),
    504: ("GatewayTimeout", "The server did not receive a timely response from the upstream server."),
}


def fault_error(fault: Fault) -> GraphApiError:
    """A scripted fault's answer, in Graph's error shape."""
    assert fault.status is not None
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if fault.status == 429:
        return GraphApiError(429, "TooManyRequests", "Too many requests, please retry later.", headers)
    code, message = SERVER_ERRORS.get(fault.status, ("UnknownError", "An error has occurred."))
    return GraphApiError(fault.status, code, message, headers)


def not_found(what: str) -> GraphApiError:
    return GraphApiError(404, "Request_ResourceNotFound",
                         f"Resource '{what}' does not exist or one of its queried reference-property objects are "
                         "not present.")


def meeting_not_found() -> GraphApiError:
    return GraphApiError(404, "NotFound", "The requested resource was not found.")  # [L] code and wording


@dataclass
class User:
    id: str
    upn: str
    display_name: str
    mail: str
    enabled: bool = True
    policy: bool = True  # granted the app's application access policy
    # Exchange's addresses of the mailbox, "SMTP:" for the primary and "smtp:" for aliases [H].
    proxy_addresses: list[str] = field(default_factory=list)


@dataclass
class Interval:
    joined: datetime
    left: datetime | None = None


@dataclass
class Record:
    id: str
    email: str | None
    display_name: str
    identity_id: str | None
    tenant_id: str | None
    role: str
    intervals: list[Interval] = field(default_factory=list)


@dataclass
class Report:
    """One run of a meeting: from its start until everyone left. Visible to the API only once ended."""

    id: str
    started: datetime
    ended: datetime | None = None
    records: dict[str, Record] = field(default_factory=dict)  # by person key (identity id or typed name)


@dataclass
class Meeting:
    id: str
    organizer: User
    subject: str
    start: datetime
    end: datetime
    created: datetime
    attendees: list[dict[str, Any]]
    join_url: str
    thread_id: str
    join_meeting_id: str
    passcode: str
    options: dict[str, Any]
    external_id: str | None = None
    runs: list[Report] = field(default_factory=list)

    @property
    def live(self) -> Report | None:
        return self.runs[-1] if self.runs and self.runs[-1].ended is None else None


@dataclass
class Event:
    """An Outlook calendar event with a Teams meeting (`meeting`, found by its join URL) [M]."""

    id: str
    organizer: User
    subject: str
    body: dict[str, Any]
    start: datetime
    end: datetime
    attendees: list[dict[str, Any]]
    meeting: Meeting
    transaction_id: str | None = None


class GraphState:
    """The world. Every method holding state takes `self.lock` (the HTTP server and tests run in other threads)."""

    SCENARIO_METHODS = ("seed_user", "set_policy", "start_meeting", "join", "leave", "end_meeting", "throttle",
                        "expire_tokens", "advance", "delete_meeting_behind_our_back", "inject_fault",
                        "clear_faults", "prepare_host", "play_class")

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "") -> None:
        self.config = config or SimConfig()
        self.base_url = base_url
        self._frozen = self.config.start.astimezone(UTC) if self.config.start else None
        self._offset = timedelta()
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}  # by lower-case UPN and by id
        self.meetings: dict[str, Meeting] = {}
        self.events: dict[str, Event] = {}
        self.tokens: dict[str, datetime] = {}  # access token -> expiry
        self.tokens_issued = 0
        self.throttled: list[str] = []  # Retry-After values of the next calls to answer 429
        self.faults = FaultPlan()
        self.requests: list[tuple[str, str]] = []  # (method, path) of API calls, for tests
        self._ticks = itertools.count(3)

    # -- plumbing used by the HTTP layer ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The frozen clock (plus `advance`), or real time when no start was configured (demos)."""
        return (self._frozen or datetime.now(UTC)) + self._offset

    def stamp(self, moment: datetime) -> str:
        return graph_timestamp(moment, next(self._ticks))

    def issue_token(self) -> tuple[str, int]:
        with self.lock:
            token = "eyJ0eXAiOiJKV1QiLCJzaW0iOnRydWV9." + secrets.token_urlsafe(24)
            self.tokens[token] = self.now() + timedelta(seconds=self.config.token_lifetime)
            self.tokens_issued += 1
            return token, self.config.token_lifetime

    def check_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or self.now() >= expiry:
            raise GraphApiError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")

    def take_throttle(self) -> str | None:
        with self.lock:
            return self.throttled.pop(0) if self.throttled else None

    def take_fault(self, method: str, target: str) -> Fault | None:
        """The first scripted fault matching this call (`target`: path and query), one of its `count` spent."""
        return self.faults.take(method, target)

    def user(self, key: str) -> User:
        found = self.users.get(key.lower())
        if found is None:
            raise not_found(key)
        return found

    def require_policy(self, user: User, action: str) -> None:
        """App-only onlineMeetings calls need an application access policy granted to the user [H]: 403 with the
        documented body, which names neither the app nor the user (the action is not said either) [H]."""
        if not user.policy:
            raise GraphApiError(403, self.config.access_policy_error_code,
                                "No Application Access Policy found for this app")

    def meeting(self, organizer: User, meeting_id: str) -> Meeting:
        found = self.meetings.get(meeting_id)
        if found is None or found.organizer.id != organizer.id:
            raise meeting_not_found()
        return found

    def new_meeting(self, organizer: User, **fields: Any) -> Meeting:
        thread = f"19:meeting_{secrets.token_urlsafe(36)}@thread.v2"
        # Graph's meeting ids are base64 of "1*{organizerId}*0**{threadId}".
        meeting_id = base64.b64encode(f"1*{organizer.id}*0**{thread}".encode()).decode()
        context = (f"%7b%22Tid%22%3a%22{self.config.tenant_id}%22%2c%22Oid%22%3a%22{organizer.id}%22%7d")
        join_url = f"{self.base_url}/l/meetup-join/{thread.replace(':', '%3a').replace('@', '%40')}/0?context={context}"
        meeting = Meeting(id=meeting_id, organizer=organizer, created=self.now(), join_url=join_url, thread_id=thread,
                          join_meeting_id=str(secrets.randbelow(9 * 10**11) + 10**11),
                          passcode=secrets.token_urlsafe(4)[:6], **fields)
        self.meetings[meeting_id] = meeting
        return meeting

    def event(self, organizer: User, event_id: str) -> Event:
        found = self.events.get(event_id)
        if found is None or found.organizer.id != organizer.id:
            raise GraphApiError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    def reports(self, meeting: Meeting) -> list[Report]:
        """Ended runs only (a report exists after its run ends), the most recent `max_reports` [H]."""
        ended = [run for run in meeting.runs if run.ended is not None]
        return ended[-self.config.max_reports:]

    # -- scenario API ----------------------------------------------------------------------------------------

    def seed_user(self, upn: str, display_name: str = "", *, policy: bool = True, enabled: bool = True,
                  mail: str | None = None, aliases: list[str] | None = None) -> dict[str, str]:
        """A tenant user. `mail` defaults to the UPN; real tenants often differ (UPN ada.l@acme.onmicrosoft.com,
        mail ada.lovelace@acme.example). `aliases` become secondary `smtp:` proxy addresses."""
        with self.lock:
            mail = mail or upn
            user = User(id=str(uuid.uuid4()), upn=upn, display_name=display_name or upn.split("@")[0],
                        mail=mail, enabled=enabled, policy=policy,
                        proxy_addresses=[f"SMTP:{mail}", *(f"smtp:{alias}" for alias in aliases or ())])
            self.users[upn.lower()] = self.users[user.id] = user
            return {"id": user.id, "userPrincipalName": upn}

    def set_policy(self, upn: str, granted: bool) -> None:
        with self.lock:
            self.user(upn).policy = granted

    def start_meeting(self, meeting_id: str) -> dict[str, str]:
        """A new run of the meeting (someone opened it): its own attendance report once it ends."""
        with self.lock:
            meeting = self.meetings[meeting_id]
            if meeting.live is None:
                meeting.runs.append(Report(id=str(uuid.uuid4()), started=self.now()))
            live = meeting.live
            assert live is not None
            return {"report_id": live.id}

    def join(self, meeting_id: str, name: str = "", *, upn: str | None = None,
             email: str | None = None) -> dict[str, str]:
        """Someone joins (starting a run if none is live): a tenant user by `upn`, or a guest who typed `name`
        (and whatever `email` Teams got from them: usually none)."""
        with self.lock:
            meeting = self.meetings[meeting_id]
            run = meeting.live or self._start(meeting)
            key, record = self._record(meeting, run, name, upn, email)
            if record.intervals and record.intervals[-1].left is None:
                raise ValueError(f"{key} is already in the meeting")
            record.intervals.append(Interval(joined=self.now()))
            return {"key": key, "report_id": run.id}

    def leave(self, meeting_id: str, name: str = "", *, upn: str | None = None) -> None:
        with self.lock:
            meeting = self.meetings[meeting_id]
            run = meeting.live
            key = self.users[upn.lower()].id if upn else name
            record = run.records.get(key) if run else None
            if record is None or not record.intervals or record.intervals[-1].left is not None:
                raise ValueError(f"{key} is not in the meeting")
            record.intervals[-1].left = self.now()

    def end_meeting(self, meeting_id: str) -> dict[str, str]:
        """Everyone still in leaves now and the run's attendance report becomes readable. [L] Real reports take
        minutes to appear; here they appear at once."""
        with self.lock:
            run = self.meetings[meeting_id].live
            if run is None:
                raise ValueError("the meeting is not running")
            for record in run.records.values():
                if record.intervals and record.intervals[-1].left is None:
                    record.intervals[-1].left = self.now()
            run.ended = self.now()
            return {"report_id": run.id}

    def throttle(self, count: int = 1, retry_after: str = "1") -> None:
        """The next `count` API calls answer 429 with this `Retry-After` (seconds) [H]."""
        with self.lock:
            self.throttled.extend([str(retry_after)] * int(count))

    def inject_fault(self, status: int | None = None, *, count: int = 1, delay: float = 0.0,
                     method: str | None = None, path: str = "", retry_after: str | None = None) -> dict[str, Any]:
        """The next `count` API calls matching `method` and `path` (a substring of path and query; "" = any) wait
        `delay` seconds and answer `status` with Graph's error body (5xx, 429; `Retry-After` when given, as Graph
        may send on 503 and does on 429). Without a status, the call is only slow and then served."""
        return self.faults.add(status, count=count, delay=delay, method=method, path=path, retry_after=retry_after)

    def clear_faults(self) -> None:
        self.faults.clear()
        with self.lock:
            self.throttled.clear()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def advance(self, seconds: float) -> str:
        with self.lock:
            self._offset += timedelta(seconds=float(seconds))
            return self.now().isoformat()

    # -- the conformance kit's uniform class (see providers/class_scenario.py) ---------------------------------

    def prepare_host(self, email: str) -> dict[str, str]:
        """A tenant user with this UPN, under the application access policy, added unless they exist."""
        with self.lock:
            existing = self.users.get(email.lower())
            if existing is not None:
                existing.policy = True
                return {"id": existing.id, "userPrincipalName": existing.upn}
        return self.seed_user(email, policy=True)

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class. A Teams join link is the same for everyone, so who joins is the account signed in at
        the keyboard: each seat's `email`, a member of the tenant (added if missing, as the kit's people are the
        organisation's); a seat without one joins as a guest. Everyone joins at `start`, leaves after their
        minutes, and the last one out ends the run, whose attendance report is then readable."""
        begin, seats = parse_class(start, join_urls)
        with self.lock:
            found = []
            for seat in seats:
                path = unquote(seat.path).lower()
                meeting = next((m for m in self.meetings.values() if path.endswith(f"/{m.thread_id.lower()}/0")),
                               None)
                if meeting is None:
                    raise ValueError(f"{seat.url}: not the join link of a meeting here")
                found.append(meeting.id)
            meeting_id = only_meeting(found)
            for seat in seats:
                if seat.email and seat.email.lower() not in self.users:
                    self.seed_user(seat.email)
            self._offset += begin - self.now()
            for seat in seats:
                self.join(meeting_id, seat.email or "Guest", upn=seat.email or None)
            ordered = by_leaving_time(seats)
            for seat in ordered[:-1]:
                self._offset += seat.leaves_at(begin) - self.now()
                self.leave(meeting_id, seat.email or "Guest", upn=seat.email or None)
            end = ordered[-1].leaves_at(begin)
            self._offset += end - self.now()
            self.end_meeting(meeting_id)
            self._offset += timedelta(minutes=1)
        return {"meeting_id": meeting_id, "started": begin.isoformat(), "ended": end.isoformat(),
                "people": len(seats)}

    def delete_meeting_behind_our_back(self, meeting_id: str) -> None:
        """Someone deletes the meeting in Teams (nightly reconciliation should notice)."""
        with self.lock:
            self.meetings.pop(meeting_id)
            for event in [e for e in self.events.values() if e.meeting.id == meeting_id]:
                del self.events[event.id]

    # -- helpers ---------------------------------------------------------------------------------------------

    def _start(self, meeting: Meeting) -> Report:
        meeting.runs.append(Report(id=str(uuid.uuid4()), started=self.now()))
        return meeting.runs[-1]

    def _record(self, meeting: Meeting, run: Report, name: str, upn: str | None,
                email: str | None) -> tuple[str, Record]:
        if upn:
            user = self.user(upn)
            key = user.id
            co_organizers = {a.get("identity", {}).get("user", {}).get("id") for a in meeting.attendees
                             if a.get("role") == "coorganizer"}
            # [L] co-organizers reported as Presenter: Graph's role enum has no co-organizer value.
            role = ("Organizer" if user.id == meeting.organizer.id
                    else "Presenter" if user.id in co_organizers else "Attendee")
            fresh = Record(id=user.id, email=user.mail, display_name=user.display_name, identity_id=user.id,
                           tenant_id=self.config.tenant_id, role=role)
        else:
            if not name:
                raise ValueError("a guest needs a name")
            key = name
            # [L] a guest's record id: Graph documents none; an opaque per-report id.
            fresh = Record(id=str(uuid.uuid4()), email=email, display_name=name, identity_id=None, tenant_id=None,
                           role="Attendee")
        return key, run.records.setdefault(key, fresh)

    def close(self) -> None:
        """Nothing runs in the background; kept for symmetry with the Zoom simulator."""
