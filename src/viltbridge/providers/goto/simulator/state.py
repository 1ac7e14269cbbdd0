"""The GoTo Training simulator's world: the account's organizers, trainings with their registrants, held sessions
with each person's join/leave periods, tokens (with optional refresh-token rotation), the 10-calls-a-second limit,
injected faults, and the scenario API that scripts what people do.

Facts come from GoTo's GoToTraining v1 OpenAPI document and docs/providers.md §5; behaviour that had to be guessed
is marked [L].
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from viltbridge.providers.class_scenario import by_leaving_time, only_meeting, parse_class
from viltbridge.providers.serving import Fault, FaultPlan, SimClock

__all__ = ["GotoApiError", "GotoState", "Registrant", "SimConfig", "Training", "TrainingSession", "iso",
           "parse_time"]

NAME_LIMIT, DESCRIPTION_LIMIT = 100, 2048  # [L] GoTo publishes no limits for G2T; G2W's subject is 128


def iso(moment: datetime) -> str:
    """GoTo's date-times: ISO-8601 in UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise GotoApiError(400, "InvalidRequest", f"{name} is required.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GotoApiError(400, "InvalidRequest", f"{name} is not a valid date-time: {value}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # [L]
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class SimConfig:
    client_id: str = "simGotoClientId0000000000000A"
    client_secret: str = "simGotoClientSecret000000000A"  # noqa: S105 - a fake app's fake secret
    refresh_token: str = "simGotoRefreshToken0000000000000A"  # noqa: S105
    organizer_key: str = "3000000000000000001"
    account_key: str = "4000000000000000001"
    organizer_email: str = "tess@example.com"
    organizer_given_name: str = "Tess"
    organizer_surname: str = "Teacher"
    multi_user: bool = True  # a multi-user account with sharing: co-organizers allowed
    # The authorising organizer is an account admin, so GoTo's Admin API lists the account's users; False: the
    # Admin API refuses (403) and only the deprecated G2T organizer listing answers.
    admin_api: bool = True
    rotate_refresh_tokens: bool = False  # every refresh answers a new refresh token and revokes the old one
    start: datetime | None = None  # a frozen clock starting here; None follows the real time (demos)
    seed: int = 0
    token_ttl: int = 3600  # 60 minutes (§5.1)
    report_delay: timedelta = timedelta(minutes=10)  # [L] a session's report appears this long after its end
    rate_limit_per_second: int | None = 10  # per API (§5.4); None turns it off
    record_exchanges: bool = False


class GotoApiError(Exception):
    """An error answer. GoTo's APIs use two bodies: `{"int_err_code", "msg"}` (the older REST APIs) and
    `{"errorCode", "description", "incident"}` (the newer gateway) [L: which answers which is not documented]."""

    def __init__(self, status: int, code: str, message: str, *, described: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.described = described
        self.headers = headers or {}

    def body(self, incident: str) -> dict[str, Any]:
        if self.described:
            return {"errorCode": self.code, "description": self.message, "incident": incident}
        return {"int_err_code": self.code, "msg": self.message}


@dataclass
class Registrant:
    key: str
    email: str
    given_name: str
    surname: str
    registered: datetime
    join_token: str
    status: str = "APPROVED"


@dataclass
class TrainingSession:
    """One held run of a training (GoTo's "session": a completed training event)."""

    key: str
    started: datetime
    ended: datetime | None = None
    # Per attendee (registrant key, or "guest:<email>") their [join, leave] periods; leave None while still in.
    periods: dict[str, list[list[datetime | None]]] = field(default_factory=dict)
    organizers_in: set[str] = field(default_factory=set)


@dataclass
class Training:
    key: str
    training_id: str  # 9 digits
    owner: str  # the scheduling organizer's key
    name: str
    description: str
    time_zone: str
    times: list[tuple[datetime, datetime]]
    co_organizers: list[str]
    disable_web_registration: bool
    disable_confirmation_email: bool
    created: datetime
    registrants: dict[str, Registrant] = field(default_factory=dict)
    sessions: list[TrainingSession] = field(default_factory=list)
    deleted: bool = False
    guests: dict[str, dict[str, str]] = field(default_factory=dict)  # email -> names of people not registered

    @property
    def running(self) -> TrainingSession | None:
        return next((s for s in self.sessions if s.ended is None), None)

    def registrant_by_email(self, email: str) -> Registrant | None:
        return next((r for r in self.registrants.values() if r.email.lower() == email.lower()), None)


class GotoState:
    """Everything the simulator holds, behind one lock; scenario methods are listed in SCENARIO_METHODS."""

    SCENARIO_METHODS = ("seed_organizer", "start_session", "join", "leave", "end_session", "set_clock", "advance",
                        "expire_tokens", "revoke_refresh_tokens", "inject_fault", "clear_faults", "prepare_host",
                        "play_class")

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "http://127.0.0.1") -> None:
        self.config = config or SimConfig()
        self.base_url = base_url
        self.clock = SimClock(self.config.start)
        self.lock = threading.RLock()
        self._random = random.Random(self.config.seed)  # noqa: S311 - ids for a fake, reproducible by seed
        cfg = self.config
        self.organizers: dict[str, dict[str, str]] = {cfg.organizer_key: {
            "organizerKey": cfg.organizer_key, "email": cfg.organizer_email, "givenName": cfg.organizer_given_name,
            "surname": cfg.organizer_surname}}
        # Users of the account without a GoTo Training licence (Admin API only; they are no organizers).
        self.other_users: dict[str, dict[str, Any]] = {}
        self.trainings: dict[str, Training] = {}
        self.tokens: dict[str, datetime] = {}  # access token -> expiry
        self.refresh_tokens = {cfg.refresh_token}
        self.issued_refresh_tokens: list[str] = []
        self.host_links: dict[str, str] = {}  # start token -> training key
        self.faults = FaultPlan()
        self.exchanges: list[dict[str, Any]] = []
        self.link_visits: list[dict[str, Any]] = []
        self.token_requests = 0
        self.rate_limited = 0  # calls answered 429 by the per-second limit (a well-paced client causes none)
        self._calls: list[float] = []

    # -- ids and plumbing -------------------------------------------------------------------------------------

    def digits(self, count: int) -> str:
        return str(self._random.randrange(10 ** (count - 1), 10**count))

    def key(self) -> str:
        """GoTo's keys: 19-digit numbers (as strings in JSON)."""
        return self.digits(19)

    def token(self) -> str:
        return f"{self._random.getrandbits(256):064x}"

    def incident(self) -> str:
        return f"{self._random.getrandbits(64):016x}"

    def close(self) -> None:
        return None

    def record(self, exchange: dict[str, Any]) -> None:
        if self.config.record_exchanges:
            with self.lock:
                self.exchanges.append(exchange)

    # -- tokens and limits ------------------------------------------------------------------------------------

    def issue_token(self, refresh_token: str) -> dict[str, Any]:
        """A token answer as GoTo's token endpoint gives it for an organizer (§5.1). With `rotate_refresh_tokens`
        the answer carries a new refresh token and the one just used stops working."""
        cfg = self.config
        self.token_requests += 1
        access = "sim" + self.token()
        self.tokens[access] = self.clock.now() + timedelta(seconds=cfg.token_ttl)
        answer: dict[str, Any] = {
            "access_token": access, "token_type": "Bearer", "expires_in": cfg.token_ttl,
            # GoTo's current token answer: no organizer_key/account_key any more (they were in older answers).
            "scope": "collab: identity:", "principal": cfg.organizer_email}
        if cfg.rotate_refresh_tokens:
            fresh = "simRefresh" + self.token()
            self.refresh_tokens.discard(refresh_token)
            self.refresh_tokens.add(fresh)
            self.issued_refresh_tokens.append(fresh)
            answer["refresh_token"] = fresh
        return answer

    def check_token(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        valid = self.tokens.get(token, self.clock.now()) > self.clock.now()
        if scheme.lower() != "bearer" or not token or not valid:
            raise GotoApiError(401, "InvalidToken", "Invalid token passed")
        return token

    def charge(self) -> None:
        """GoTo's default limit: 10 calls a second per API (§5.4), counted over one real second. The 429 carries no
        Retry-After (none is documented)."""
        limit = self.config.rate_limit_per_second
        if limit is None:
            return
        now = time.monotonic()
        recent = [t for t in self._calls if now - t < 1.0]
        if len(recent) >= limit:
            self._calls = recent
            self.rate_limited += 1
            raise GotoApiError(429, "TooManyRequests", "The rate limit for this API has been exceeded.",
                               described=True)
        self._calls = [*recent, now]

    def take_fault(self, path: str, method: str | None = None) -> Fault | None:
        return self.faults.take(method, path)

    # -- lookups and JSON ---------------------------------------------------------------------------------------

    def organizer(self, organizer_key: str) -> dict[str, str]:
        """The organizer of a path; a token may act only for its own organizer [L: a 403, as for another user]."""
        found = self.organizers.get(organizer_key)
        if found is None or organizer_key != self.config.organizer_key:
            raise GotoApiError(403, "AccessDenied", "The access token does not allow access to this organizer.")
        return found

    def training(self, training_key: str) -> Training:
        training = self.trainings.get(training_key)
        if training is None or training.deleted:
            raise GotoApiError(404, "NotFound", "The requested training could not be found.")
        return training

    def registration_url(self, training: Training) -> str:
        return f"{self.base_url}/r/{training.key}"

    def join_url(self, training: Training, registrant: Registrant) -> str:
        return f"{self.base_url}/join/training/{training.key}/{registrant.join_token}"

    def confirmation_url(self, training: Training, registrant: Registrant) -> str:
        return (f"{self.base_url}/registration/confirmation.tmpl?registrant={registrant.key}"
                f"&training={training.key}")

    def training_json(self, training: Training) -> dict[str, Any]:
        return {
            "trainingKey": training.key, "trainingId": training.training_id, "name": training.name,
            "description": training.description, "timeZone": training.time_zone,
            "times": [{"startDate": iso(start), "endDate": iso(end)} for start, end in training.times],
            "organizers": [self.organizers[key] for key in [training.owner, *training.co_organizers]],
            "registrationSettings": {"disableWebRegistration": training.disable_web_registration,
                                     "disableConfirmationEmail": training.disable_confirmation_email},
        }

    def registrant_json(self, training: Training, registrant: Registrant) -> dict[str, Any]:
        return {"registrantKey": registrant.key, "email": registrant.email, "givenName": registrant.given_name,
                "surname": registrant.surname, "status": registrant.status,
                "registrationDate": iso(registrant.registered), "joinUrl": self.join_url(training, registrant),
                "confirmationUrl": self.confirmation_url(training, registrant)}

    def reported_sessions(self, training: Training) -> list[TrainingSession]:
        """Completed sessions whose report is ready: `report_delay` after their end [L]."""
        now = self.clock.now()
        return [s for s in training.sessions if s.ended is not None and s.ended + self.config.report_delay <= now]

    def session_json(self, training: Training, session: TrainingSession) -> dict[str, Any]:
        assert session.ended is not None
        attended = [key for key, periods in session.periods.items() if periods]
        return {"sessionKey": session.key, "trainingName": training.name, "sessionStartTime": iso(session.started),
                "sessionEndTime": iso(session.ended), "attendanceCount": len(attended),
                "duration": _minutes(session.ended - session.started),
                # [L] the training's organizers, whether or not they joined
                "organizers": [self.organizers[key] for key in [training.owner, *training.co_organizers]]}

    def attendees_json(self, training: Training, session: TrainingSession) -> list[dict[str, Any]]:
        """Attendees with their periods, then registrants who did not attend (`timeInSession: 0`, no periods)."""
        rows: list[dict[str, Any]] = []
        for who, periods in session.periods.items():
            if who.startswith("guest:"):
                email = who.removeprefix("guest:")
                names = training.guests.get(email, {})
                given, surname = names.get("givenName", ""), names.get("surname", "")
            else:
                registrant = training.registrants[who]
                email, given, surname = registrant.email, registrant.given_name, registrant.surname
            times = []
            for joined, left in periods:
                assert joined is not None and left is not None  # a reported session has ended
                times.append({"joinTime": iso(joined), "leaveTime": iso(left),
                              "timeInPartOfSession": _minutes(left - joined)})
            rows.append({"givenName": given, "surname": surname, "email": email,
                         "timeInSession": sum(t["timeInPartOfSession"] for t in times), "inSessionTimes": times})
        for registrant in training.registrants.values():
            if registrant.key not in session.periods:
                rows.append({"givenName": registrant.given_name, "surname": registrant.surname,
                             "email": registrant.email, "timeInSession": 0, "inSessionTimes": []})
        return rows

    # -- scenario API -----------------------------------------------------------------------------------------

    def seed_organizer(self, email: str, given_name: str = "", surname: str = "",
                       organizer_key: str | None = None) -> dict[str, str]:
        """Another organizer on the account (a GoTo Training licence): a possible co-organizer."""
        with self.lock:
            key = organizer_key or self.key()
            organizer = {"organizerKey": key, "email": email, "givenName": given_name or email.split("@")[0],
                         "surname": surname}
            self.organizers[key] = organizer
            return organizer

    def seed_account_user(self, email: str, products: tuple[str, ...] = ("G2M",)) -> dict[str, Any]:
        """A user of the account licensed for other GoTo products (no G2T): listed by the Admin API only."""
        with self.lock:
            key = self.key()
            user: dict[str, Any] = {"key": key, "email": email, "firstName": email.split("@")[0], "lastName": "",
                                    "products": list(products)}
            self.other_users[key] = user
            return user

    def admin_users(self) -> list[dict[str, Any]]:
        """The account's users as the Admin API lists them: a user's `key` is their organizerKey [M]."""
        with self.lock:
            organizers = [{"key": o["organizerKey"], "email": o["email"], "firstName": o["givenName"],
                           "lastName": o["surname"], "products": ["G2T"]} for o in self.organizers.values()]
            return sorted([*organizers, *self.other_users.values()], key=lambda u: str(u["key"]))

    def start_session(self, training_key: str, at: str | datetime | None = None) -> dict[str, Any]:
        """The training starts (the organizer opened the start link): a new session unless one runs."""
        with self.lock:
            training = self.training(training_key)
            if training.running is None:
                training.sessions.append(TrainingSession(key=self.key(), started=self._when(at)))
            running = training.running
            assert running is not None
            return {"session_key": running.key}

    def join(self, training_key: str, email: str, given_name: str = "", surname: str = "",
             at: str | datetime | None = None) -> dict[str, Any]:
        """`email` joins (starting a session if none runs): a registrant by their registration, an organizer as
        organizer (not in the attendee report), anyone else as a guest [L]. Joining again opens another period."""
        self.start_session(training_key, at)
        with self.lock:
            training = self.training(training_key)
            session = training.running
            assert session is not None
            organizer = self._organizer_of(training, email)
            if organizer is not None:
                session.organizers_in.add(organizer)
                return {"session_key": session.key, "as": "organizer"}
            registrant = training.registrant_by_email(email)
            if registrant is not None:
                who = registrant.key
            else:
                who = f"guest:{email.lower()}"
                training.guests[email.lower()] = {"givenName": given_name, "surname": surname}
            periods = session.periods.setdefault(who, [])
            if periods and periods[-1][1] is None:
                raise ValueError(f"{email} is already in the session")
            periods.append([self._when(at), None])
            return {"session_key": session.key, "as": "registrant" if registrant else "guest",
                    "registrant_key": registrant.key if registrant else None}

    def leave(self, training_key: str, email: str, at: str | datetime | None = None) -> dict[str, Any]:
        with self.lock:
            training = self.training(training_key)
            session = training.running
            if session is None:
                raise ValueError("the training is not running")
            if self._organizer_of(training, email) is not None:
                return {"session_key": session.key, "as": "organizer"}  # organizers are not in the report
            registrant = training.registrant_by_email(email)
            who = registrant.key if registrant else f"guest:{email.lower()}"
            periods = session.periods.get(who) or []
            if not periods or periods[-1][1] is not None:
                raise ValueError(f"{email} is not in the session")
            periods[-1][1] = self._when(at)
            return {"session_key": session.key}

    def end_session(self, training_key: str, at: str | datetime | None = None) -> dict[str, Any]:
        """The organizer ends the running session: everyone still in leaves then. Its report appears
        `report_delay` later."""
        with self.lock:
            training = self.training(training_key)
            session = training.running
            if session is None:
                raise ValueError("the training is not running")
            ended = self._when(at)
            for periods in session.periods.values():
                for period in periods:
                    if period[1] is None:
                        period[1] = ended
            session.ended = ended
            return {"session_key": session.key, "report_at": iso(ended + self.config.report_delay)}

    # -- the conformance kit's uniform class (see providers/class_scenario.py) ---------------------------------

    def prepare_host(self, email: str) -> dict[str, str]:
        """An organizer with this email on the account (GoTo Training licence), added unless one exists."""
        with self.lock:
            existing = next((o for o in self.organizers.values() if o["email"].lower() == email.lower()), None)
        return existing if existing is not None else self.seed_organizer(email)

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class: the organizer's start link (`/start/{training}/{token}`) starts the session at
        `start`, each registrant's join link (`/join/training/{training}/{token}`) is that registrant joining;
        each leaves after their minutes, the last one out ends it, and the clock moves past `report_delay`."""
        begin, seats = parse_class(start, join_urls)
        people: dict[str, str | None] = {}  # seat url -> registrant email (None: the organizer)
        keys = []
        with self.lock:
            for seat in seats:
                parts = seat.path.strip("/").split("/")
                if len(parts) == 3 and parts[0] == "start" and self.host_links.get(parts[2]) == parts[1]:
                    keys.append(parts[1])
                    people[seat.url] = None
                    continue
                training = self.trainings.get(parts[2]) if len(parts) == 4 and parts[:2] == ["join", "training"] \
                    else None
                registrant = next((r for r in training.registrants.values() if r.join_token == parts[3]),
                                  None) if training is not None else None
                if training is None or training.deleted or registrant is None:
                    raise ValueError(f"{seat.url}: not a start or registrant join link of a GoTo training here")
                keys.append(training.key)
                people[seat.url] = registrant.email
        training_key = only_meeting(keys)
        self.set_clock(begin)
        self.start_session(training_key, begin)
        for seat in seats:
            email = people[seat.url]
            if email is not None:
                self.join(training_key, email, at=begin)
        ordered = by_leaving_time(seats)
        for seat in ordered[:-1]:
            email = people[seat.url]
            if email is not None:
                self.leave(training_key, email, seat.leaves_at(begin))
        end = ordered[-1].leaves_at(begin)
        self.end_session(training_key, end)
        self.set_clock(end + self.config.report_delay + timedelta(minutes=1))
        return {"training_key": training_key, "started": iso(begin), "ended": iso(end), "people": len(seats)}

    def set_clock(self, at: str | datetime) -> dict[str, Any]:
        with self.lock:
            self.clock.set(self._when(at))
            return {"now": iso(self.clock.now())}

    def advance(self, seconds: float) -> dict[str, Any]:
        with self.lock:
            self.clock.set(self.clock.now() + timedelta(seconds=float(seconds)))
            return {"now": iso(self.clock.now())}

    def expire_tokens(self) -> dict[str, Any]:
        """Every issued access token stops working now (as after 60 minutes): clients must refresh."""
        with self.lock:
            self.tokens.clear()
            return {"expired": True}

    def revoke_refresh_tokens(self) -> dict[str, Any]:
        """The organizer withdrew the authorisation: every refresh token stops working."""
        with self.lock:
            self.refresh_tokens.clear()
            return {"revoked": True}

    def inject_fault(self, status: int | None = None, count: int = 1, path: str = "", delay: float = 0.0,
                     method: str | None = None) -> dict[str, Any]:
        """The next `count` calls (the token endpoint included) whose path contains `path` (and whose method is
        `method`, when given) wait `delay` real seconds, then answer `status`, or answer normally when no status."""
        return self.faults.add(status, count=count, delay=delay, method=method, path=path)

    def clear_faults(self) -> dict[str, Any]:
        return self.faults.clear()

    def snapshot(self) -> dict[str, Any]:
        """The world as plain data (tests, demos)."""
        with self.lock:
            return {"trainings": [{**self.training_json(t), "deleted": t.deleted,
                                   "registrants": [r.email for r in t.registrants.values()],
                                   "sessions": [s.key for s in t.sessions]} for t in self.trainings.values()]}

    def _organizer_of(self, training: Training, email: str) -> str | None:
        for key in [training.owner, *training.co_organizers]:
            if self.organizers[key]["email"].lower() == email.lower():
                return key
        return None

    def _when(self, at: str | datetime | None) -> datetime:
        if at is None:
            return self.clock.now()
        if isinstance(at, str):
            return parse_time(at, "at")
        return at.astimezone(UTC)


def _minutes(span: timedelta) -> int:
    """GoTo reports durations in whole minutes [L: rounding is not documented; rounded to nearest]."""
    return round(span.total_seconds() / 60)


def valid_zone(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise GotoApiError(400, "InvalidRequest", "timeZone is required.")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise GotoApiError(400, "InvalidTimeZone", f"timeZone {value} is not a valid time zone id.") from None
    return value
