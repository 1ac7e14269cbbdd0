"""The simulated BigBlueButton server's world: meetings, who is in them, the clock, and the analytics callback.

Behaviour follows docs/providers.md §4; guesses are marked [L]. The scenario API (`SCENARIO_METHODS`, also over
HTTP as `POST /_sim/{method}`) scripts what people do: join, leave, end, move the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx2
import jwt

from viltbridge.providers.class_scenario import by_leaving_time, only_meeting, parse_class

ALGORITHMS = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}  # chosen by the checksum's length (§4.1)


class BbbFailure(Exception):
    """A FAILED answer: BBB's messageKey and message."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class SimConfig:
    # The simulator's own, published; 64 hex digits like the secret bbb-install generates (openssl rand -hex 32).
    shared_secret: str = "8cd8ef52e8e101574e400365b55e11a6c1b4d9f0e2a7358b6d4f1c0e9a2b7d3f"  # noqa: S105
    supported_algorithms: tuple[str, ...] = ("sha1", "sha256", "sha384", "sha512")
    start: datetime | None = None  # freeze the clock here; None follows the real time
    # bigbluebutton.properties `meetingExpireIfNoUserJoinedInMinutes` (default 5): a created meeting nobody joined
    # is forgotten after this long, so a later `create` starts it afresh with its new name and options.
    expire_if_no_user_joined_minutes: float = 5
    # The server's release. `join`'s `role` parameter exists from 2.4 ("Updates to API": 2.4 added `role`); an older
    # server ignores it and decides the role by the deprecated `password` alone.
    version: tuple[int, int] = (2, 7)


@dataclass
class Attendee:
    user_id: str
    full_name: str
    role: str
    joins: list[datetime] = field(default_factory=list)
    leaves: list[datetime] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return len(self.joins) > len(self.leaves)


@dataclass
class Meeting:
    meeting_id: str
    name: str
    internal_id: str
    create_time: datetime
    params: dict[str, str]
    attendees: dict[str, Attendee] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def metadata(self) -> dict[str, str]:
        return {key[5:].lower(): value for key, value in self.params.items() if key.startswith("meta_")}


class BbbState:
    SCENARIO_METHODS: ClassVar[tuple[str, ...]] = ("join", "leave", "end_meeting", "advance", "meeting_ids",
                                                   "prepare_host", "play_class")

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "") -> None:
        self.config = config or SimConfig()
        self.base_url = base_url
        self.lock = threading.RLock()
        self._now = self.config.start
        self.meetings: dict[str, Meeting] = {}  # running (or created, not yet joined) meetings by meetingID
        self.ended: list[Meeting] = []
        self.callbacks: list[dict[str, Any]] = []  # every analytics callback sent: url, headers, payload, status
        self._runs = 0

    def close(self) -> None:
        self.meetings.clear()

    # --- clock -----------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    def advance(self, seconds: float) -> str:
        self._now = self.now() + timedelta(seconds=seconds)
        return self.now().isoformat()

    # --- checksum --------------------------------------------------------------------------------------------

    def verify(self, call: str, query: str) -> None:
        """The checksum over the query exactly as received, minus the checksum parameter itself (§4.1)."""
        parts = [part for part in query.split("&") if part]
        given = [part.partition("=")[2] for part in parts if part.startswith("checksum=")]
        rest = "&".join(part for part in parts if not part.startswith("checksum="))
        if len(given) != 1:
            raise BbbFailure("checksumError", "You did not pass the checksum security check")
        algorithm = ALGORITHMS.get(len(given[0]))
        if algorithm is None or algorithm not in self.config.supported_algorithms:
            raise BbbFailure("checksumError", "You did not pass the checksum security check")
        expected = hashlib.new(algorithm, (call + rest + self.config.shared_secret).encode()).hexdigest()
        if not hmac.compare_digest(expected, given[0].lower()):
            raise BbbFailure("checksumError", "You did not pass the checksum security check")

    # --- API -------------------------------------------------------------------------------------------------

    def _forget_unjoined(self) -> None:
        cutoff = self.now() - timedelta(minutes=self.config.expire_if_no_user_joined_minutes)
        for meeting_id, meeting in list(self.meetings.items()):
            if not meeting.attendees and meeting.create_time < cutoff:
                del self.meetings[meeting_id]

    def meeting_for(self, params: dict[str, str], missing: str = "notFound") -> Meeting:
        self._forget_unjoined()
        meeting_id = params.get("meetingID", "")
        if not meeting_id:
            raise BbbFailure("missingParamMeetingID", "You must specify a meeting ID for the meeting.")
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            raise BbbFailure(missing, "We could not find a meeting with that meeting ID")
        return meeting

    def create(self, params: dict[str, str]) -> tuple[Meeting, bool]:
        """The meeting and whether it already existed (then nothing about it changes: duplicateWarning)."""
        self._forget_unjoined()
        meeting_id, name = params.get("meetingID", ""), params.get("name", "")
        if not meeting_id:
            raise BbbFailure("missingParamMeetingID", "You must specify a meeting ID for the meeting.")
        if meeting_id in self.meetings:
            return self.meetings[meeting_id], True
        if not 2 <= len(name) <= 64 or not 2 <= len(meeting_id) <= 256 or "," in meeting_id:
            raise BbbFailure("validationError", "Invalid name or meetingID.")  # [L] key for these checks
        self._runs += 1
        created = self.now()
        digest = hashlib.sha1(meeting_id.encode()).hexdigest()  # noqa: S324 - BBB's own id scheme, not security
        # `attendeePW`/`moderatorPW`: deprecated, random when absent (create's parameter table).
        passwords = {key: params.get(key) or secrets.token_hex(8) for key in ("attendeePW", "moderatorPW")}
        meeting = Meeting(meeting_id=meeting_id, name=name, create_time=created, params={**params, **passwords},
                          internal_id=f"{digest}-{int(created.timestamp() * 1000) + self._runs}")
        self.meetings[meeting_id] = meeting
        return meeting, False

    def role_for(self, params: dict[str, str]) -> str:
        """The role a `join` gets, as join's parameter table says: `role` (2.4 and later) when present and valid
        overrides `password`; otherwise `password` must match the meeting's moderatorPW or attendeePW."""
        role = params.get("role", "").upper()
        if self.config.version >= (2, 4) and role in ("MODERATOR", "VIEWER"):
            return role
        meeting = self.meeting_for(params, missing="invalidMeetingIdentifier")
        password = params.get("password", "")
        if password and password == meeting.params["moderatorPW"]:
            return "MODERATOR"
        if password and password == meeting.params["attendeePW"]:
            return "VIEWER"
        # [L] the key and message bbb-web answers when neither a valid role nor a matching password is given.
        raise BbbFailure("invalidPassword", "You either did not supply a password or the password supplied is "
                                            "neither the attendee or moderator password for this conference.")

    def join(self, meeting_id: str, user_id: str, full_name: str, role: str = "VIEWER") -> dict[str, Any]:
        """Someone enters (by a join URL, or scripted). [L] they count as joined when the join URL is opened."""
        with self.lock:
            meeting = self.meeting_for({"meetingID": meeting_id}, missing="invalidMeetingIdentifier")
            attendee = meeting.attendees.setdefault(user_id, Attendee(user_id, full_name, role))
            if not attendee.present:
                attendee.joins.append(self.now())
            meeting.started_at = meeting.started_at or self.now()
            return {"internal_meeting_id": meeting.internal_id, "user_id": user_id}

    def leave(self, meeting_id: str, user_id: str) -> dict[str, Any]:
        with self.lock:
            attendee = self.meeting_for({"meetingID": meeting_id}).attendees[user_id]
            if attendee.present:
                attendee.leaves.append(self.now())
            return {"user_id": user_id, "present": attendee.present}

    def end_meeting(self, meeting_id: str) -> dict[str, Any]:
        """Everyone leaves, the meeting is forgotten (getMeetingInfo → notFound), then the analytics callback is
        posted if the meeting asked for one. [L] BBB posts after processing; here at once, synchronously."""
        with self.lock:
            meeting = self.meeting_for({"meetingID": meeting_id})
            for attendee in meeting.attendees.values():
                if attendee.present:
                    attendee.leaves.append(self.now())
            meeting.ended_at = self.now()
            del self.meetings[meeting_id]
            self.ended.append(meeting)
        url = meeting.params.get("meta_analytics-callback-url")
        status = self._post_callback(url, meeting) if url else None
        return {"internal_meeting_id": meeting.internal_id, "callback_status": status}

    # --- the conformance kit's uniform class (see providers/class_scenario.py) ------------------------------

    def prepare_host(self, email: str) -> dict[str, Any]:
        """BBB has no accounts: whoever holds a moderator join URL hosts."""
        return {"email": email, "note": "BigBlueButton has no host accounts; nothing to prepare"}

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class: each signed join URL (`.../api/join?...&checksum=`) is checked as BBB checks it and
        its holder joins at `start` under its userID and role; each leaves after their minutes, the last one out
        ends the meeting, and the analytics callback is posted. The clock is put back afterwards: BBB pushes its
        evidence, so nothing later depends on the time of the class."""
        begin, seats = parse_class(start, join_urls)
        joins: dict[str, dict[str, str]] = {}
        for seat in seats:
            call = seat.path.rstrip("/").rsplit("/", 1)[-1]
            query = seat.url.partition("?")[2]
            if call != "join":
                raise ValueError(f"{seat.url}: not a BigBlueButton join URL")
            try:
                self.verify("join", query)
            except BbbFailure as failure:
                raise ValueError(f"{seat.url}: {failure}") from None
            joins[seat.url] = dict(parse_qsl(query, keep_blank_values=True))
        meeting_id = only_meeting([params.get("meetingID", "") for params in joins.values()])
        with self.lock:
            saved = self._now
            self._now = begin
            self.meeting_for({"meetingID": meeting_id}, missing="invalidMeetingIdentifier")
            user_ids: dict[str, str] = {}
            for seat in seats:
                params = joins[seat.url]
                user_ids[seat.url] = params.get("userID") or f"w_{len(user_ids)}"
                self.join(meeting_id, user_ids[seat.url], params.get("fullName", "Guest"), self.role_for(params))
            ordered = by_leaving_time(seats)
            for seat in ordered[:-1]:
                self._now = seat.leaves_at(begin)
                self.leave(meeting_id, user_ids[seat.url])
            self._now = end = ordered[-1].leaves_at(begin)
        try:
            ended = self.end_meeting(meeting_id)
        finally:
            with self.lock:
                self._now = saved
        return {"meeting_id": meeting_id, "started": begin.isoformat(), "ended": end.isoformat(),
                "people": len(seats), "callback_status": ended["callback_status"]}

    def meeting_ids(self) -> list[str]:
        self._forget_unjoined()
        return sorted(self.meetings)

    def info(self, meeting: Meeting) -> dict[str, Any]:
        running = any(a.present for a in meeting.attendees.values())
        present = [a for a in meeting.attendees.values() if a.present]
        return {"meetingName": meeting.name, "meetingID": meeting.meeting_id,
                "internalMeetingID": meeting.internal_id, "createTime": _ms(meeting.create_time),
                "running": running, "hasUserJoined": bool(meeting.attendees),
                "startTime": _ms(meeting.started_at) if meeting.started_at else 0, "endTime": 0,
                "participantCount": len(present),
                "moderatorCount": sum(1 for a in present if a.role == "MODERATOR"),
                "attendees": [{"userID": a.user_id, "fullName": a.full_name, "role": a.role} for a in present],
                "metadata": meeting.metadata}

    # --- the analytics callback ------------------------------------------------------------------------------

    def analytics(self, meeting: Meeting) -> dict[str, Any]:
        """Shaped like post_events_analytics_callback.rb's payload (§4.6), the parts viltbridge reads."""
        start = meeting.started_at or meeting.create_time
        finish = meeting.ended_at or self.now()
        attendees = [{"ext_user_id": a.user_id, "name": a.full_name, "moderator": a.role == "MODERATOR",
                      "joins": [_stamp(t) for t in a.joins], "leaves": [_stamp(t) for t in a.leaves],
                      "duration": int(sum((leave - join).total_seconds() for join, leave in zip(a.joins, a.leaves,
                                                                                               strict=False)))}
                     for a in meeting.attendees.values()]
        return {"version": "1.0", "meeting_id": meeting.meeting_id, "internal_meeting_id": meeting.internal_id,
                "data": {"metadata": meeting.metadata, "duration": int((finish - start).total_seconds()),
                         "start": _stamp(start), "finish": _stamp(finish), "attendees": attendees, "files": [],
                         "polls": []}}

    def callback_token(self) -> str:
        """HS512 JWT signed with the shared secret, carrying `exp` = now + 24 h (as BBB does)."""
        expires = int((self.now() + timedelta(hours=24)).timestamp())
        return jwt.encode({"exp": expires}, self.config.shared_secret, algorithm="HS512")

    def _post_callback(self, url: str, meeting: Meeting) -> int | None:
        body = json.dumps(self.analytics(meeting))
        headers = {"Authorization": f"Bearer {self.callback_token()}", "Content-Type": "application/json",
                   "User-Agent": "BigBlueButton Analytics Callback"}
        try:
            status: int | None = httpx2.post(url, content=body, headers=headers, timeout=5).status_code
        except httpx2.HTTPError:
            status = None  # BBB logs and does not retry (§4.6)
        self.callbacks.append({"url": url, "headers": headers, "body": body, "status": status})
        return status


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")

