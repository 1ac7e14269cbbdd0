"""The world behind the Zoom simulator: account, users, meetings, registrants, meeting instances with their
join/leave segments, a controllable clock, rate-limit counters, scripted faults and the webhook outbox.

Plain in-memory objects behind one lock: the HTTP handlers (server thread) and scenario calls (test thread) both
touch them. Webhooks are never posted while the lock is held, because a receiver may call straight back into the
simulator's API (e.g. fetch the report when `meeting.ended` arrives).

Facts come from the official Meetings OpenAPI document and docs/providers.md §1 ([H]/[M]/[L] marks there); where a
behaviour is a guess it says so here and is a setting, not a constant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2

from viltbridge.providers.class_scenario import Seat, by_leaving_time, only_meeting, parse_class
from viltbridge.providers.serving import Fault, FaultPlan, SimClock

LIGHT, MEDIUM, HEAVY = "Light", "Medium", "Heavy"


# ---------------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Plan:
    """Per-account limits of one Zoom plan (providers.md §1.8). Counters are per account, shared by all apps."""

    name: str
    per_second: Mapping[str, int]
    # Daily caps by category. On Pro/Business only Heavy (+Resource-intensive) has one: a shared pool.
    per_day: Mapping[str, int]
    paid: bool  # reports and registration need Pro or higher


PLANS: dict[str, Plan] = {
    "free": Plan("free", {LIGHT: 4, MEDIUM: 2, HEAVY: 1}, {LIGHT: 6000, MEDIUM: 2000, HEAVY: 1000}, paid=False),
    "pro": Plan("pro", {LIGHT: 30, MEDIUM: 20, HEAVY: 10}, {HEAVY: 30000}, paid=True),
    "business": Plan("business", {LIGHT: 80, MEDIUM: 60, HEAVY: 40}, {HEAVY: 60000}, paid=True),
}

DEFAULT_SCOPES = (
    "meeting:read:admin", "meeting:write:admin", "report:read:admin", "user:read:admin", "user:write:admin",
)


@dataclass(frozen=True)
class SimConfig:
    account_id: str = "simAccount0000000000A"
    client_id: str = "simClientId0000000000A"
    client_secret: str = "simClientSecret000000000000000A"  # noqa: S105 - a fake app's fake secret
    webhook_secret_token: str = "simWebhookSecretToken000A"  # noqa: S105
    webhook_url: str | None = None
    plan: str = "pro"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    start: datetime | None = None  # a frozen clock starting here; None follows the real time (demos)
    seed: int = 0  # ids, tokens and passcodes come from a seeded generator: same script, same ids
    token_ttl: int = 3600
    start_url_ttl: int = 2 * 3600
    cust_create_start_url_ttl: int = 90 * 86400
    page_token_ttl: int = 15 * 60
    enforce_rate_limits: bool = True
    host_daily_meeting_writes: int = 100  # create + update per host per UTC day
    # [L] Real Zoom lets Basic (type 1) users host 40-minute meetings; the issue asks for 3161 on unlicensed
    # hosts, so Basic hosts are refused unless this is on. Types 4 and 99 (no Meetings licence) always are.
    basic_hosts_allowed: bool = False
    auto_process_reports: bool = False  # else report rows say duration 0 until mark_report_processed()
    # [L] Zoom's "email display rules" may show a registrant's email for an external participant; default to the
    # hardest case for matching: registrants who are not signed in show up with an empty email.
    report_registrant_emails: bool = False
    webhook_timeout: float = 3.0
    # The account's tracking fields (label -> visible), which a meeting create/update may give values for. None: any
    # label is kept (visible), as if an admin had defined it. [L] Zoom does not document what it does with a label
    # the account lacks; here it is dropped without an error.
    tracking_fields: Mapping[str, bool] | None = None
    record_exchanges: bool = False  # keep every API request/response (the spec-conformance test reads them)


# ---------------------------------------------------------------------------------------------------------------
# Clock and small helpers


def iso(moment: datetime) -> str:
    """Zoom's wire format for times: ISO-8601 UTC with a Z and no fraction."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no zone; give UTC with a Z or an offset")
    return moment.astimezone(UTC)


def next_utc_midnight(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """Zoom's signature: `v0=` + hex HMAC-SHA256(secret token, "v0:{timestamp}:{raw body}")."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


class ZoomApiError(Exception):
    """An error the API answers with Zoom's body `{"code", "message"}` (codes are Zoom codes, not HTTP ones)."""

    def __init__(self, status: int, code: int, message: str, *, headers: Mapping[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def validation_failed(field_name: str, message: str = "Invalid field.") -> ZoomApiError:
    return ZoomApiError(400, 300, "Validation Failed.", errors=[{"field": field_name, "message": message}])


def meeting_not_found(meeting_id: object) -> ZoomApiError:
    return ZoomApiError(404, 3001, f"Meeting does not exist: {meeting_id}.")


# ---------------------------------------------------------------------------------------------------------------
# The world's objects


@dataclass
class User:
    id: str
    email: str
    first_name: str
    last_name: str
    type: int  # 1 Basic, 2 Licensed, 4 no Meetings licence, 99 None
    status: str  # active | inactive | pending
    pmi: int
    created_at: datetime
    timezone: str = "UTC"
    dept: str = ""
    cust_create: bool = False  # custCreate users start meetings only through start_url (valid 90 days)

    def as_json(self, account_id: str) -> dict[str, Any]:
        return {
            "id": self.id, "first_name": self.first_name, "last_name": self.last_name,
            "display_name": f"{self.first_name} {self.last_name}".strip(), "email": self.email, "type": self.type,
            "role_name": "Member", "pmi": self.pmi, "use_pmi": False,
            "personal_meeting_url": f"https://zoom.us/j/{self.pmi}", "timezone": self.timezone, "verified": 1,
            "dept": self.dept, "created_at": iso(self.created_at), "user_created_at": iso(self.created_at),
            "language": "en-US", "status": self.status, "role_id": "2", "account_id": account_id,
            "cluster": "us06", "login_types": [100],
        }


@dataclass
class Registrant:
    id: str
    email: str
    first_name: str
    last_name: str
    status: str  # approved | pending | denied
    create_time: datetime
    token: str  # the `tk` in the registrant's personal join link
    pin: int
    extra: dict[str, Any] = field(default_factory=dict)  # address/org fields, custom_questions, language


@dataclass
class Segment:
    """One join/leave interval: one row of the participants report."""

    participant_id: str  # the report's `user_id`: new on every (re)join
    participant_uuid: str
    person: str  # scenario handle: stays the same across reconnects of one person on one device
    name: str
    email: str  # as Zoom shows it: "" for guests and for most people outside the host's account
    zoom_user_id: str  # `id` / `participant_user_id`: "" unless signed in to the host's account
    registrant_id: str
    customer_key: str
    join_time: datetime
    leave_time: datetime | None = None
    status: str = "in_meeting"


@dataclass
class Instance:
    uuid: str
    start_time: datetime
    end_time: datetime | None = None
    segments: list[Segment] = field(default_factory=list)
    processed: bool = False
    next_participant: int = 0

    @property
    def live(self) -> bool:
        return self.end_time is None


@dataclass
class Meeting:
    id: int
    host_id: str
    topic: str
    type: int
    start_time: datetime
    duration: int
    timezone: str
    agenda: str
    password: str
    encrypted_password: str
    h323_password: str
    settings: dict[str, Any]
    created_at: datetime
    next_uuid: str  # the UUID the next start will use; Zoom hands it out before the meeting ever runs
    registration_token: str
    recurrence: dict[str, Any] | None = None
    tracking_fields: list[dict[str, str]] = field(default_factory=list)  # [{"field", "value"}] as the client sent
    registrants: dict[str, Registrant] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    deleted_at: datetime | None = None

    @property
    def live_instance(self) -> Instance | None:
        return next((inst for inst in reversed(self.instances) if inst.live), None)

    @property
    def registration_enabled(self) -> bool:
        return self.settings.get("approval_type", 2) in (0, 1)


@dataclass
class OutgoingWebhook:
    seq: int
    event: str
    body: bytes
    attempt: int = 1
    due: datetime | None = None  # retries wait for the clock


@dataclass
class Delivery:
    seq: int
    event: str
    url: str
    body: str
    headers: dict[str, str]
    attempt: int
    at: datetime
    status: int | None
    error: str | None
    response: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "url": self.url, "body": self.body,
                "payload": json.loads(self.body), "headers": self.headers, "attempt": self.attempt,
                "at": iso(self.at), "status": self.status, "error": self.error, "response": self.response}


# ---------------------------------------------------------------------------------------------------------------
# Rate limits


class RateLimiter:
    """Per-account counters per category per second and per UTC day, and Zoom's per-host 100 create/update a day.

    Seconds are the simulator clock's seconds, so limits are deterministic: with a frozen clock every request
    falls into the same second until the test advances it.
    """

    def __init__(self, plan: Plan, host_daily: int) -> None:
        self.plan = plan
        self.host_daily = host_daily
        self._second: dict[str, tuple[int, int]] = {}
        self._day: dict[tuple[str, date], int] = {}
        self._host: dict[tuple[str, date], int] = {}

    def charge(self, category: str, now: datetime) -> dict[str, str]:
        """Count one request or raise 429; returns the X-RateLimit-* headers for a successful answer."""
        second = int(now.timestamp())
        qps = self.plan.per_second[category]
        current, used = self._second.get(category, (second, 0))
        if current != second:
            used = 0
        if used >= qps:
            raise ZoomApiError(
                429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.",
                headers={"X-RateLimit-Category": category, "X-RateLimit-Type": "QPS",
                         "X-RateLimit-Limit": str(qps), "X-RateLimit-Remaining": "0"})
        headers = {"X-RateLimit-Category": category}
        daily = self.plan.per_day.get(category)
        if daily is not None:
            key = (category, now.date())
            spent = self._day.get(key, 0)
            if spent >= daily:
                raise ZoomApiError(
                    429, 429, "You have reached the maximum daily rate limit for this API. Refer to the response "
                    "header for details on when you can make another request.",
                    headers={"X-RateLimit-Category": category, "X-RateLimit-Type": "Daily-limit",
                             "X-RateLimit-Limit": str(daily), "X-RateLimit-Remaining": "0",
                             "Retry-After": iso(next_utc_midnight(now))})
            self._day[key] = spent + 1
            headers.update({"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Limit": str(daily),
                            "X-RateLimit-Remaining": str(daily - spent - 1)})
        self._second[category] = (second, used + 1)
        return headers

    def charge_host(self, host_id: str, category: str, now: datetime) -> None:
        key = (host_id, now.date())
        spent = self._host.get(key, 0)
        if spent >= self.host_daily:
            raise ZoomApiError(
                429, 429, f"You have exceeded the daily rate limit ({self.host_daily}) of Meeting Create/Update API "
                "requests permitted for this particular user. You may resume these requests at GMT 00:00:00.",
                headers={"X-RateLimit-Category": category, "X-RateLimit-Type": "Daily-limit",
                         "X-RateLimit-Limit": str(self.host_daily), "X-RateLimit-Remaining": "0",
                         "Retry-After": iso(next_utc_midnight(now))})
        self._host[key] = spent + 1


# ---------------------------------------------------------------------------------------------------------------
# The state


def _when(value: datetime | str | None, clock: SimClock) -> datetime:
    return clock.now() if value is None else parse_time(value)


class ZoomState:
    """Everything the simulator knows, the API semantics' building blocks, and the scenario API.

    Scenario methods (seed_user, start_meeting, join, leave, reconnect, end_meeting, restart_meeting,
    mark_report_processed, webhook and clock controls, faults) take and return JSON-friendly values so that the
    HTTP scenario API (`POST /_sim/{method}`) can call them by name with the same arguments.
    """

    SCENARIO_METHODS = (
        "seed_user", "start_meeting", "join", "leave", "reconnect", "end_meeting", "restart_meeting",
        "mark_report_processed", "configure_webhooks", "hold_webhooks", "release_webhooks", "redeliver_webhook",
        "validate_webhook_endpoint", "webhooks_sent", "drain_webhooks", "set_clock", "advance_clock", "now",
        "inject_fault", "clear_faults", "revoke_tokens", "set_plan", "snapshot", "prepare_host", "play_class",
    )

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "http://127.0.0.1") -> None:
        self.config = config or SimConfig()
        if self.config.plan not in PLANS:
            raise ValueError(f"unknown plan {self.config.plan!r}; known: {', '.join(PLANS)}")
        self.base_url = base_url  # where the simulator listens: API, OAuth and the join/start pages
        self.lock = threading.RLock()
        self.clock = SimClock(self.config.start)
        self.rng = random.Random(self.config.seed)  # noqa: S311 - fake ids, reproducible by seed
        self.limiter = RateLimiter(PLANS[self.config.plan], self.config.host_daily_meeting_writes)
        self.webhook_url = self.config.webhook_url
        self.webhook_secret = self.config.webhook_secret_token
        self.users: dict[str, User] = {}
        self.meetings: dict[int, Meeting] = {}
        self.tokens: dict[str, tuple[datetime, str]] = {}  # access token -> (expiry, scope)
        self.start_tokens: dict[str, tuple[int, datetime]] = {}  # zak -> (meeting id, expiry)
        self.page_tokens: dict[str, tuple[str, int, datetime]] = {}  # token -> (listing key, offset, issued)
        self.faults = FaultPlan()
        self.exchanges: list[dict[str, Any]] = []
        self.web_visits: deque[dict[str, Any]] = deque(maxlen=10_000)  # clicks on join/start links
        self._outbox: list[OutgoingWebhook] = []
        self._retries: list[OutgoingWebhook] = []
        self._deliveries: list[Delivery] = []
        self._hold = False
        self._seq = 0
        self._delivery_lock = threading.Lock()
        self._http: httpx2.Client | None = None  # one pooled client for all deliveries (built lazily)

    # -- ids ------------------------------------------------------------------------------------------------

    def _bytes(self, n: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def new_id(self) -> str:
        """A 22-character URL-safe id like Zoom's user and registrant ids ("30R7kT7bTIKSNUFEuH_Qlg")."""
        return base64.urlsafe_b64encode(self._bytes(16)).decode().rstrip("=")

    def new_uuid(self) -> str:
        """A meeting-instance UUID: standard base64, so it may hold `/`, `+` and `=` (hence double encoding)."""
        return base64.b64encode(self._bytes(16)).decode()

    def new_token(self, n: int = 32) -> str:
        return base64.urlsafe_b64encode(self._bytes(n)).decode().rstrip("=")

    def new_digits(self, n: int) -> int:
        return self.rng.randint(10 ** (n - 1), 10**n - 1)

    def new_passcode(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(self.rng.choice(alphabet) for _ in range(6))

    def new_meeting_id(self) -> int:
        while True:
            candidate = self.rng.randint(81_000_000_000, 99_999_999_999)  # 11 digits: needs int64 downstream
            if candidate not in self.meetings:
                return candidate

    # -- lookups --------------------------------------------------------------------------------------------

    def find_user(self, key: str) -> User | None:
        """By id, email (case-insensitive) or `me` (for an account-level app: the account owner, the first user)."""
        if key == "me":
            return next(iter(self.users.values()), None)
        if key in self.users:
            return self.users[key]
        lowered = key.lower()
        return next((u for u in self.users.values() if u.email.lower() == lowered), None)

    def get_user(self, key: str) -> User:
        user = self.find_user(key)
        if user is None:
            raise ZoomApiError(404, 1001, f"User does not exist: {key}.")
        return user

    def get_meeting(self, meeting_id: int | str, *, include_deleted: bool = False,
                    not_found: Callable[[object], ZoomApiError] = meeting_not_found) -> Meeting:
        try:
            number = int(meeting_id)
        except (TypeError, ValueError):
            raise not_found(meeting_id) from None
        meeting = self.meetings.get(number)
        if meeting is None or (meeting.deleted_at is not None and not include_deleted):
            raise not_found(meeting_id)
        return meeting

    def find_instance(self, uuid: str) -> tuple[Meeting, Instance] | None:
        for meeting in self.meetings.values():
            for inst in meeting.instances:
                if inst.uuid == uuid:
                    return meeting, inst
        return None

    def host_of(self, meeting: Meeting) -> User:
        return self.users[meeting.host_id]

    # -- tokens, links --------------------------------------------------------------------------------------

    def _prune(self, table: dict[str, Any], expired: Callable[[Any], bool]) -> None:
        """Long demos and benchmarks mint many tokens; forget dead ones now and then."""
        if len(table) > 10_000:
            for key in [k for k, v in table.items() if expired(v)]:
                del table[key]

    def issue_token(self) -> tuple[str, int, str]:
        now = self.clock.now()
        self._prune(self.tokens, lambda entry: entry[0] <= now)
        token = "eyJzaW0iOiJ6b29tIn0." + self.new_token(48)
        scope = " ".join(self.config.scopes)
        self.tokens[token] = (self.clock.now() + timedelta(seconds=self.config.token_ttl), scope)
        return token, self.config.token_ttl - 1, scope  # Zoom reports 3599 for a one-hour token [M]

    def check_token(self, authorization: str | None) -> str:
        """The token's scope string, or 401 code 124 for missing, unknown or expired tokens."""
        scheme, _, token = (authorization or "").partition(" ")
        entry = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry[0] <= self.clock.now():
            raise ZoomApiError(401, 124, "Invalid access token.")
        return entry[1]

    def start_url(self, meeting: Meeting) -> str:
        """A fresh host start link; its zak token expires (2 h; 90 days for custCreate hosts)."""
        now = self.clock.now()
        self._prune(self.start_tokens, lambda entry: entry[1] <= now)
        zak = self.new_token(40)
        host = self.host_of(meeting)
        ttl = self.config.cust_create_start_url_ttl if host.cust_create else self.config.start_url_ttl
        self.start_tokens[zak] = (meeting.id, self.clock.now() + timedelta(seconds=ttl))
        return f"{self.base_url}/s/{meeting.id}?zak={zak}"

    def join_url(self, meeting: Meeting) -> str:
        # Stable across edits: only a passcode change changes the `pwd` it carries.
        return f"{self.base_url}/j/{meeting.id}?pwd={meeting.encrypted_password}"

    def registrant_join_url(self, meeting: Meeting, registrant: Registrant) -> str:
        return f"{self.base_url}/w/{meeting.id}?tk={registrant.token}&pwd={meeting.encrypted_password}"

    def registration_url(self, meeting: Meeting) -> str:
        return f"{self.base_url}/meeting/register/{meeting.registration_token}"

    # -- pagination -----------------------------------------------------------------------------------------

    def page(self, listing: str, rows: list[Any], page_size: str | None, next_page_token: str | None,
             ) -> tuple[list[Any], dict[str, Any]]:
        """Cut one page; Zoom's `next_page_token` lives 15 minutes and is "" on the last page."""
        size = 30
        if page_size:
            try:
                size = int(page_size)
            except ValueError:
                raise validation_failed("page_size") from None
            if size < 1:
                raise validation_failed("page_size")
            size = min(size, 300)  # [M] Zoom caps rather than refuses page_size above the maximum
        offset = 0
        if next_page_token:
            entry = self.page_tokens.get(next_page_token)
            now = self.clock.now()
            if (entry is None or entry[0] != listing
                    or now - entry[2] > timedelta(seconds=self.config.page_token_ttl)):
                raise ZoomApiError(400, 300, "The next page token is invalid or expired.")
            offset = entry[1]
        chunk = rows[offset:offset + size]
        token = ""
        if offset + size < len(rows):
            ttl = timedelta(seconds=self.config.page_token_ttl)
            self._prune(self.page_tokens, lambda entry: self.clock.now() - entry[2] > ttl)
            token = self.new_token(24)
            self.page_tokens[token] = (listing, offset + size, self.clock.now())
        meta = {"page_count": -(-len(rows) // size), "page_size": size, "total_records": len(rows),
                "next_page_token": token}
        return chunk, meta

    # -- faults and rate limits -----------------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self.faults.take(method, path)

    def record(self, exchange: dict[str, Any]) -> None:
        if self.config.record_exchanges:
            with self.lock:
                self.exchanges.append(exchange)

    # -- webhooks: building ---------------------------------------------------------------------------------

    def _meeting_object(self, meeting: Meeting, inst: Instance) -> dict[str, Any]:
        return {"id": str(meeting.id), "uuid": inst.uuid, "host_id": meeting.host_id, "topic": meeting.topic,
                "type": meeting.type, "start_time": iso(inst.start_time), "timezone": meeting.timezone,
                "duration": meeting.duration}

    def _participant_object(self, seg: Segment) -> dict[str, Any]:
        participant = {"user_id": seg.participant_id, "user_name": seg.name, "id": seg.zoom_user_id,
                       "participant_uuid": seg.participant_uuid, "email": seg.email,
                       "registrant_id": seg.registrant_id, "participant_user_id": seg.zoom_user_id}
        if seg.customer_key:
            participant["customer_key"] = seg.customer_key
        return participant

    def _enqueue(self, event: str, obj: dict[str, Any], at: datetime) -> None:
        if not self.webhook_url:
            return  # no subscription, nothing to send (events are not kept for a URL configured later)
        payload = {"event": event, "event_ts": int(at.timestamp() * 1000),  # when it happened, not when sent
                   "payload": {"account_id": self.config.account_id, "object": obj}}
        self._seq += 1
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._outbox.append(OutgoingWebhook(self._seq, event, body))

    def _enqueue_started(self, meeting: Meeting, inst: Instance) -> None:
        self._enqueue("meeting.started", self._meeting_object(meeting, inst), inst.start_time)

    def _enqueue_ended(self, meeting: Meeting, inst: Instance) -> None:
        end = inst.end_time or self.clock.now()
        obj = self._meeting_object(meeting, inst)
        obj["end_time"] = iso(end)
        self._enqueue("meeting.ended", obj, end)

    def _enqueue_joined(self, meeting: Meeting, inst: Instance, seg: Segment) -> None:
        obj = self._meeting_object(meeting, inst)
        if seg.status == "in_waiting_room":  # Zoom's waiting-room events carry `date_time` (Rivet typings)
            obj["participant"] = {**self._participant_object(seg), "date_time": iso(seg.join_time)}
            self._enqueue("meeting.participant_joined_waiting_room", obj, seg.join_time)
            return
        obj["participant"] = {**self._participant_object(seg), "join_time": iso(seg.join_time)}
        self._enqueue("meeting.participant_joined", obj, seg.join_time)

    def _enqueue_left(self, meeting: Meeting, inst: Instance, seg: Segment, reason: str) -> None:
        obj = self._meeting_object(meeting, inst)
        assert seg.leave_time is not None
        if seg.status == "in_waiting_room":
            obj["participant"] = {**self._participant_object(seg), "date_time": iso(seg.leave_time)}
            self._enqueue("meeting.participant_left_waiting_room", obj, seg.leave_time)
            return
        obj["participant"] = {**self._participant_object(seg), "leave_time": iso(seg.leave_time),
                              "leave_reason": reason}
        self._enqueue("meeting.participant_left", obj, seg.leave_time)

    # -- webhooks: delivering -------------------------------------------------------------------------------

    def _post(self, item: OutgoingWebhook, url: str, secret: str) -> Delivery:
        now = self.clock.now()
        timestamp = str(int(now.timestamp()))
        headers = {"content-type": "application/json", "x-zm-request-timestamp": timestamp,
                   "x-zm-signature": sign_webhook(secret, timestamp, item.body),
                   "x-zm-trackingid": f"v=2.0&s={item.seq}&a={item.attempt}", "user-agent": "Zoom Marketplace/1.0a"}
        status: int | None = None
        error: str | None = None
        text = ""
        try:
            if self._http is None:
                self._http = httpx2.Client(timeout=self.config.webhook_timeout)
            response = self._http.post(url, content=item.body, headers=headers)
            status, text = response.status_code, response.text[:2000]
        except httpx2.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Delivery(item.seq, item.event, url, item.body.decode(), headers, item.attempt, now, status, error,
                        text)

    def has_outgoing(self) -> bool:
        with self.lock:
            return bool(self._outbox) and not self._hold

    def deliver_pending(self, *, batch: list[OutgoingWebhook] | None = None) -> list[dict[str, Any]]:
        """Post queued webhooks (or `batch`) in order, outside the state lock; failed ones get Zoom's retries."""
        sent: list[Delivery] = []
        with self._delivery_lock:
            while True:
                with self.lock:
                    url, secret = self.webhook_url, self.webhook_secret
                    if batch is None:
                        if self._hold or not self._outbox or not url:
                            break
                        todo, self._outbox = self._outbox, []
                    else:
                        todo, batch = batch, []
                        if not todo or not url:
                            break
                assert url is not None
                for item in todo:
                    delivery = self._post(item, url, secret)
                    sent.append(delivery)
                    with self.lock:
                        self._deliveries.append(delivery)
                        failed = delivery.status is None or not 200 <= delivery.status < 300
                        if failed and item.attempt <= 3:
                            # Zoom retries 5 min after the first attempt, then 20 and 60 min after each retry.
                            wait = {1: 5, 2: 20, 3: 60}[item.attempt]
                            self._retries.append(OutgoingWebhook(item.seq, item.event, item.body, item.attempt + 1,
                                                                 delivery.at + timedelta(minutes=wait)))
        return [d.as_json() for d in sent]

    def _deliver_due_retries(self) -> list[dict[str, Any]]:
        with self.lock:
            now = self.clock.now()
            due = [r for r in self._retries if r.due is not None and r.due <= now]
            self._retries = [r for r in self._retries if r not in due]
        return self.deliver_pending(batch=due) if due else []

    def close(self) -> None:
        with self._delivery_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    # -- scenario: users ------------------------------------------------------------------------------------

    def add_user(self, email: str, *, type: int = 2, status: str = "active", first_name: str = "",
                 last_name: str = "", user_id: str | None = None, timezone: str = "UTC",
                 cust_create: bool = False) -> User:
        with self.lock:
            user = User(id=user_id or self.new_id(), email=email, first_name=first_name, last_name=last_name,
                        type=type, status=status, pmi=self.new_digits(10), created_at=self.clock.now(),
                        timezone=timezone, cust_create=cust_create)
            self.users[user.id] = user
            return user

    def seed_user(self, email: str, *, type: int = 2, status: str = "active", first_name: str = "",
                  last_name: str = "", user_id: str | None = None, timezone: str = "UTC",
                  cust_create: bool = False) -> dict[str, Any]:
        """Add a user to the account, or change the type/status/names of an existing one (same email)."""
        if type not in (1, 2, 4, 99):
            raise ValueError("type must be 1 (Basic), 2 (Licensed), 4 (no Meetings licence) or 99 (None)")
        if status not in ("active", "inactive", "pending"):
            raise ValueError("status must be active, inactive or pending")
        with self.lock:
            user = self.find_user(email)
            if user is None:
                user = self.add_user(email, type=type, status=status, first_name=first_name, last_name=last_name,
                                     user_id=user_id, timezone=timezone, cust_create=cust_create)
            else:
                user.type, user.status, user.cust_create = type, status, cust_create
                user.first_name = first_name or user.first_name
                user.last_name = last_name or user.last_name
            return user.as_json(self.config.account_id)

    # -- scenario: meetings ---------------------------------------------------------------------------------

    def _scenario_meeting(self, meeting_id: int | str) -> Meeting:
        try:
            return self.get_meeting(meeting_id, include_deleted=True)
        except ZoomApiError:
            raise KeyError(f"no meeting {meeting_id}") from None

    def _start(self, meeting: Meeting, at: datetime, uuid: str | None) -> Instance:
        inst = Instance(uuid=uuid or meeting.next_uuid, start_time=at)
        if uuid is None:
            meeting.next_uuid = self.new_uuid()
        meeting.instances.append(inst)
        self._enqueue_started(meeting, inst)
        return inst

    def _join(self, meeting: Meeting, inst: Instance, seg: Segment) -> None:
        inst.segments.append(seg)
        self._enqueue_joined(meeting, inst, seg)

    def _new_segment(self, inst: Instance, *, person: str, name: str, email: str, zoom_user_id: str,
                     registrant_id: str, customer_key: str, at: datetime, participant_uuid: str | None = None,
                     status: str = "in_meeting") -> Segment:
        # Zoom's per-join participant ids look like 16778240, 16779264, ... (a fresh one on every join).
        pid = str(16778240 + 1024 * inst.next_participant)
        inst.next_participant += 1
        return Segment(participant_id=pid, participant_uuid=participant_uuid or self.new_token(12), person=person,
                       name=name, email=email, zoom_user_id=zoom_user_id, registrant_id=registrant_id,
                       customer_key=customer_key, join_time=at, status=status)

    def start_meeting(self, meeting_id: int | str, *, at: datetime | str | None = None, uuid: str | None = None,
                      host_joins: bool = True) -> dict[str, Any]:
        """The host starts the meeting: a new instance (UUID), `meeting.started`, and the host's first segment."""
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            if meeting.live_instance is not None:
                raise ValueError(f"meeting {meeting_id} is already running")
            moment = _when(at, self.clock)
            inst = self._start(meeting, moment, uuid)
            if host_joins:
                host = self.host_of(meeting)
                name = f"{host.first_name} {host.last_name}".strip() or host.email
                self._join(meeting, inst, self._new_segment(
                    inst, person=f"user:{host.id}", name=name, email=host.email, zoom_user_id=host.id,
                    registrant_id="", customer_key="", at=moment))
            result = {"meeting_id": meeting.id, "uuid": inst.uuid}
        self.deliver_pending()
        return result

    def join(self, meeting_id: int | str, name: str, *, user: str | None = None, registrant: str | None = None,
             email: str = "", customer_key: str = "", at: datetime | str | None = None,
             waiting_room: bool = False) -> dict[str, Any]:
        """Someone joins. `user` (email or id): signed in to the host's account, so the report has their id and
        email. `registrant` (id or email): joined through their personal link, so the report has registrant_id.
        Otherwise a guest: empty id and email unless `email` says what Zoom would show. `waiting_room`: they wait
        to be admitted (report status `in_waiting_room`, waiting-room webhooks). Starts the meeting (without the
        host) if it is not running."""
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            moment = _when(at, self.clock)
            inst = meeting.live_instance or self._start(meeting, moment, None)
            zoom_user_id, shown_email, registrant_id, person = "", email, "", f"guest:{name}"
            if user is not None:
                account_user = self.find_user(user)
                if account_user is None:
                    raise KeyError(f"no user {user} on the account")
                zoom_user_id, shown_email, person = account_user.id, account_user.email, f"user:{account_user.id}"
            if registrant is not None:
                reg = self._find_registrant(meeting, registrant)
                registrant_id, person = reg.id, f"registrant:{reg.id}"
                if self.config.report_registrant_emails and not shown_email:
                    shown_email = reg.email
            seg = self._new_segment(inst, person=person, name=name, email=shown_email, zoom_user_id=zoom_user_id,
                                    registrant_id=registrant_id, customer_key=customer_key, at=moment,
                                    status="in_waiting_room" if waiting_room else "in_meeting")
            self._join(meeting, inst, seg)
            result = {"meeting_id": meeting.id, "uuid": inst.uuid, "participant_id": seg.participant_id}
        self.deliver_pending()
        return result

    def _find_registrant(self, meeting: Meeting, key: str) -> Registrant:
        if key in meeting.registrants:
            return meeting.registrants[key]
        for reg in meeting.registrants.values():
            if reg.email.lower() == key.lower():
                return reg
        raise KeyError(f"no registrant {key} on meeting {meeting.id}")

    def _open_segment(self, inst: Instance, who: str) -> Segment:
        open_segments = [s for s in inst.segments if s.leave_time is None]
        for seg in open_segments:
            if who == seg.participant_id:
                return seg
        named = [s for s in open_segments if who in (s.name, s.email, s.registrant_id) and who]
        if len(named) == 1:
            return named[0]
        raise KeyError(f"no single participant {who!r} in the meeting now")

    def _leave(self, meeting: Meeting, inst: Instance, seg: Segment, at: datetime, reason: str) -> None:
        seg.leave_time = max(at, seg.join_time)
        self._enqueue_left(meeting, inst, seg, reason)

    def leave(self, meeting_id: int | str, participant: str, *, at: datetime | str | None = None) -> dict[str, Any]:
        """A participant (per-join id from join(), or their name/email/registrant id) leaves."""
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            inst = meeting.live_instance
            if inst is None:
                raise ValueError(f"meeting {meeting_id} is not running")
            seg = self._open_segment(inst, participant)
            self._leave(meeting, inst, seg, _when(at, self.clock), "left the meeting")
            result = {"meeting_id": meeting.id, "uuid": inst.uuid, "participant_id": seg.participant_id}
        self.deliver_pending()
        return result

    def reconnect(self, meeting_id: int | str, participant: str, *, gap_seconds: float = 0,
                  at: datetime | str | None = None, name: str | None = None, as_guest: bool = False,
                  ) -> dict[str, Any]:
        """Drop and rejoin: a new segment with a new per-join id. `as_guest` rejoins from another device through
        the shared link (no account id, email or registrant id), typically under another `name`."""
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            inst = meeting.live_instance
            if inst is None:
                raise ValueError(f"meeting {meeting_id} is not running")
            seg = self._open_segment(inst, participant)
            left_at = _when(at, self.clock)
            self._leave(meeting, inst, seg, left_at, "left the meeting. Reason : connection lost")
            rejoin_at = left_at + timedelta(seconds=gap_seconds)
            if as_guest:
                new = self._new_segment(inst, person=f"guest:{name or seg.name}", name=name or seg.name, email="",
                                        zoom_user_id="", registrant_id="", customer_key="", at=rejoin_at)
            else:
                new = self._new_segment(inst, person=seg.person, name=name or seg.name, email=seg.email,
                                        zoom_user_id=seg.zoom_user_id, registrant_id=seg.registrant_id,
                                        customer_key=seg.customer_key, at=rejoin_at,
                                        participant_uuid=seg.participant_uuid)
            self._join(meeting, inst, new)
            result = {"meeting_id": meeting.id, "uuid": inst.uuid, "participant_id": new.participant_id,
                      "previous_participant_id": seg.participant_id}
        self.deliver_pending()
        return result

    def end_instance(self, meeting: Meeting, at: datetime) -> Instance | None:
        """Everyone leaves, the instance ends (`meeting.participant_left` for each, then `meeting.ended`)."""
        inst = meeting.live_instance
        if inst is None:
            return None
        for seg in inst.segments:
            if seg.leave_time is None:
                self._leave(meeting, inst, seg, at, "left the meeting. Reason : Host ended the meeting")
        inst.end_time = max(at, inst.start_time)
        inst.processed = self.config.auto_process_reports
        self._enqueue_ended(meeting, inst)
        return inst

    def end_meeting(self, meeting_id: int | str, *, at: datetime | str | None = None) -> dict[str, Any]:
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            inst = self.end_instance(meeting, _when(at, self.clock))
            if inst is None:
                raise ValueError(f"meeting {meeting_id} is not running")
            result = {"meeting_id": meeting.id, "uuid": inst.uuid}
        self.deliver_pending()
        return result

    def restart_meeting(self, meeting_id: int | str, *, at: datetime | str | None = None, gap_seconds: float = 0,
                        uuid: str | None = None, rejoin: bool = False) -> dict[str, Any]:
        """End the running instance (if any) and start a new one with a new UUID. With `rejoin`, everyone who was
        in comes back (new per-join ids), as after a host's accidental "End meeting for all"."""
        with self.lock:
            meeting = self._scenario_meeting(meeting_id)
            moment = _when(at, self.clock)
            running = meeting.live_instance
            present = [s for s in running.segments if s.leave_time is None] if running is not None else []
            old = self.end_instance(meeting, moment)
            restart_at = moment + timedelta(seconds=gap_seconds)
            inst = self._start(meeting, restart_at, uuid)
            if rejoin:
                for seg in present:  # whoever was in when it ended comes back
                    self._join(meeting, inst, self._new_segment(
                        inst, person=seg.person, name=seg.name, email=seg.email, zoom_user_id=seg.zoom_user_id,
                        registrant_id=seg.registrant_id, customer_key=seg.customer_key, at=restart_at))
            result = {"meeting_id": meeting.id, "uuid": inst.uuid,
                      "previous_uuid": old.uuid if old is not None else None}
        self.deliver_pending()
        return result

    def mark_report_processed(self, meeting: int | str) -> dict[str, Any]:
        """Report rows get real durations (before this Zoom says `duration: 0`: "not ready yet"). A numeric id
        marks every ended instance of that meeting; a UUID marks that instance."""
        with self.lock:
            found = self.find_instance(str(meeting))
            if found is not None:
                instances = [found[1]]
            else:
                instances = [i for i in self._scenario_meeting(meeting).instances if not i.live]
            for inst in instances:
                inst.processed = True
            return {"processed": [inst.uuid for inst in instances]}

    # -- scenario: the conformance kit's uniform class (see providers/class_scenario.py) ---------------------

    def prepare_host(self, email: str) -> dict[str, Any]:
        """A Licensed, active user with this email exists (created if missing), so it can host."""
        return self.seed_user(email, type=2, status="active")

    def _seat(self, seat: Seat, at: datetime) -> tuple[Meeting, str, Registrant | None]:
        """What Zoom makes of a click on this link: the meeting, the page kind (s/w/j), the registrant."""
        kind, _, number = seat.path.strip("/").partition("/")
        meeting = self._scenario_meeting(number)
        if kind == "s":
            entry = self.start_tokens.get(seat.query("zak"))
            if entry is None or entry[0] != meeting.id or entry[1] <= at:
                raise ValueError(f"{seat.url}: not a valid start link for meeting {meeting.id} at {iso(at)}")
            return meeting, kind, None
        if kind not in ("w", "j") or seat.query("pwd") != meeting.encrypted_password:
            raise ValueError(f"{seat.url}: not a join link of meeting {meeting.id} (wrong page or passcode)")
        if kind == "j":
            if meeting.registration_enabled:
                raise ValueError(f"{seat.url}: meeting {meeting.id} requires registration; this plain link leads "
                                 "to the registration form, not into the meeting")
            return meeting, kind, None
        registrant = next((r for r in meeting.registrants.values() if r.token == seat.query("tk")), None)
        if registrant is None or registrant.status != "approved":
            raise ValueError(f"{seat.url}: no approved registrant holds this link")
        return meeting, kind, registrant

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class: the host starts it at `start` through the start link, everyone joins through their
        link, each leaves after their minutes, the last one out ends it, and the report is processed."""
        begin, seats = parse_class(start, join_urls)
        with self.lock:
            resolved = [(seat, *self._seat(seat, begin)) for seat in seats]
        meeting_id = int(only_meeting([str(meeting.id) for _, meeting, _, _ in resolved]))
        self.set_clock(begin)
        who: dict[str, str] = {}  # seat url -> what leave() knows them by
        hosts = [seat for seat, _, kind, _ in resolved if kind == "s"]
        if hosts:
            self.start_meeting(meeting_id, at=begin)
            who[hosts[0].url] = self.host_of(self._scenario_meeting(meeting_id)).email
        for seat, _, _, registrant in resolved:
            if seat.url in who:
                continue
            if registrant is not None:
                name = f"{registrant.first_name} {registrant.last_name}".strip() or registrant.email
                joined = self.join(meeting_id, name, registrant=registrant.id, at=begin)
            else:
                joined = self.join(meeting_id, seat.query("uname") or seat.email or "Guest", at=begin)
            who[seat.url] = joined["participant_id"]
        ordered = by_leaving_time(seats)
        for seat in ordered[:-1]:
            self.leave(meeting_id, who[seat.url], at=seat.leaves_at(begin))
        end = ordered[-1].leaves_at(begin)
        self.end_meeting(meeting_id, at=end)
        self.mark_report_processed(meeting_id)
        self.set_clock(end + timedelta(minutes=1))
        return {"meeting_id": meeting_id, "started": iso(begin), "ended": iso(end), "people": len(seats)}

    # -- scenario: webhooks ---------------------------------------------------------------------------------

    def configure_webhooks(self, *, url: str | None = None, secret: str | None = None) -> dict[str, Any]:
        with self.lock:
            if url is not None:
                self.webhook_url = url or None
            if secret is not None:
                self.webhook_secret = secret
            return {"url": self.webhook_url, "held": self._hold}

    def hold_webhooks(self) -> dict[str, Any]:
        """Queue events instead of sending them, until release_webhooks()."""
        with self.lock:
            self._hold = True
            return {"held": True, "queued": len(self._outbox)}

    def release_webhooks(self, *, order: str = "sent", duplicate: int = 0, seed: int = 0) -> list[dict[str, Any]]:
        """Send what was held: in `order` "sent", "reversed" or "shuffled", each `duplicate` extra times."""
        if order not in ("sent", "reversed", "shuffled"):
            raise ValueError("order must be sent, reversed or shuffled")
        with self.lock:
            self._hold = False
            queued, self._outbox = self._outbox, []
            batch = [item for item in queued for _ in range(1 + duplicate)]
            if order == "reversed":
                batch.reverse()
            elif order == "shuffled":
                random.Random(seed).shuffle(batch)  # noqa: S311
        return self.deliver_pending(batch=batch)

    def redeliver_webhook(self, seq: int) -> list[dict[str, Any]]:
        """Send an already-sent event again (same body, fresh timestamp and signature): a duplicate delivery."""
        with self.lock:
            sent = next((d for d in self._deliveries if d.seq == seq), None)
            if sent is None:
                raise KeyError(f"no delivered webhook #{seq}")
            item = OutgoingWebhook(seq, sent.event, sent.body.encode())
        return self.deliver_pending(batch=[item])

    def webhooks_sent(self, *, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [d.as_json() for d in self._deliveries if event is None or d.event == event]

    def drain_webhooks(self) -> list[dict[str, Any]]:
        """Wait for deliveries in flight (e.g. after an API call) and send anything queued."""
        return self.deliver_pending()

    def validate_webhook_endpoint(self, *, plain_token: str | None = None) -> dict[str, Any]:
        """Zoom's `endpoint.url_validation` challenge; ok when the answer echoes plainToken with the right
        encryptedToken (hex HMAC-SHA256 of plainToken under the secret token)."""
        with self.lock:
            token = plain_token or self.new_token(16)
            self._seq += 1
            now = self.clock.now()
            body = json.dumps({"payload": {"plainToken": token}, "event_ts": int(now.timestamp() * 1000),
                               "event": "endpoint.url_validation"}, separators=(",", ":")).encode()
            item = OutgoingWebhook(self._seq, "endpoint.url_validation", body)
            secret = self.webhook_secret
        [delivery] = self.deliver_pending(batch=[item]) or [{}]
        expected = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        ok = False
        if delivery.get("status") == 200:
            try:
                answer = json.loads(delivery["response"])
                ok = answer == {"plainToken": token, "encryptedToken": expected}
            except ValueError:
                ok = False
        return {"ok": ok, "plain_token": token, "expected_encrypted_token": expected, "delivery": delivery}

    # -- scenario: clock, faults, misc ----------------------------------------------------------------------

    def now(self) -> str:
        return iso(self.clock.now())

    def set_clock(self, at: datetime | str) -> dict[str, Any]:
        with self.lock:
            self.clock.set(parse_time(at))
        retried = self._deliver_due_retries()
        return {"now": self.now(), "webhook_retries": len(retried)}

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        with self.lock:
            self.clock.advance(seconds)
        retried = self._deliver_due_retries()
        return {"now": self.now(), "webhook_retries": len(retried)}

    def inject_fault(self, status: int | None = None, *, count: int = 1, delay: float = 0.0,
                     method: str | None = None, path: str = "", retry_after: str | None = None) -> dict[str, Any]:
        """The next `count` API calls whose path contains `path` (and method matches) wait `delay` real seconds
        and/or answer `status` (429 with Zoom's per-second body and headers; 5xx with a JSON error)."""
        return self.faults.add(status, count=count, delay=delay, method=method, path=path, retry_after=retry_after)

    def clear_faults(self) -> dict[str, Any]:
        return self.faults.clear()

    def revoke_tokens(self) -> dict[str, Any]:
        """Every issued token dies at once (Zoom: the app was deactivated)."""
        with self.lock:
            count = len(self.tokens)
            self.tokens.clear()
            return {"revoked": count}

    def set_plan(self, plan: str, *, enforce_rate_limits: bool | None = None) -> dict[str, Any]:
        """Switch plan (fresh counters); optionally switch rate limiting on or off."""
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}; known: {', '.join(PLANS)}")
        with self.lock:
            enforce = self.config.enforce_rate_limits if enforce_rate_limits is None else enforce_rate_limits
            self.config = replace(self.config, plan=plan, enforce_rate_limits=enforce)
            self.limiter = RateLimiter(PLANS[plan], self.config.host_daily_meeting_writes)
            return {"plan": plan, "enforce_rate_limits": enforce}

    def snapshot(self) -> dict[str, Any]:
        """A readable dump of the world, for debugging a scenario."""
        with self.lock:
            return {
                "now": self.now(), "plan": self.config.plan,
                "users": [u.as_json(self.config.account_id) for u in self.users.values()],
                "meetings": [{
                    "id": m.id, "topic": m.topic, "host_id": m.host_id, "deleted": m.deleted_at is not None,
                    "tracking_fields": [dict(item) for item in m.tracking_fields],
                    "registrants": len(m.registrants),
                    "instances": [{"uuid": i.uuid, "start_time": iso(i.start_time),
                                   "end_time": iso(i.end_time) if i.end_time else None, "processed": i.processed,
                                   "segments": len(i.segments)} for i in m.instances],
                } for m in self.meetings.values()],
                "webhooks": {"sent": len(self._deliveries), "queued": len(self._outbox), "held": self._hold,
                             "retries_pending": len(self._retries)},
            }

