"""The Webex simulator's world: people, meeting series and their held instances, participants and their device
joins, tokens, faults, webhook deliveries, and the scenario API that scripts what people do.

Facts come from the official Webex Meetings OpenAPI document and docs/providers.md §3; behaviour that had to be
guessed is marked [L].
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from viltbridge.providers.class_scenario import by_leaving_time, only_meeting, parse_class
from viltbridge.providers.serving import Fault, FaultPlan, SimClock

__all__ = ["Instance", "Participant", "Series", "SimConfig", "WebexApiError", "WebexState", "iso"]

SITE = "sim.webex.com"
MIN_DURATION, MAX_DURATION = timedelta(minutes=10), timedelta(hours=24)
TITLE_LIMIT, AGENDA_LIMIT = 128, 1300


def iso(moment: datetime) -> str:
    """Webex's timestamps: ISO-8601 in UTC with a Z (seconds precision for schedules)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise WebexApiError(400, "The input parameters contain invalid items.", f"{name} is required.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WebexApiError(400, "The input parameters contain invalid items.",
                            f"{name} is not a valid ISO 8601 time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # [L] Webex reads a zone-less time in the `timezone` given
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class SimConfig:
    client_id: str = "simWebexClientId000000000000A"
    client_secret: str = "simWebexClientSecret0000000000A"  # noqa: S105 - a fake app's fake secret
    refresh_token: str = "simWebexRefreshToken000000000000A"  # noqa: S105
    access_token: str | None = None  # a personal access token accepted as is (never expires in the simulator)
    webhook_secret: str = "simWebexWebhookSecret00A"  # noqa: S105
    webhook_url: str | None = None
    start: datetime | None = None  # a frozen clock starting here; None follows the real time (demos)
    seed: int = 0
    token_ttl: int = 1209599  # 14 days (§3.1)
    report_delay: timedelta = timedelta(minutes=15)  # ended instances are listed this long after their end (§3.2)
    rate_limit_per_second: int | None = None  # [L] Webex publishes no numbers; off unless a test sets one
    record_exchanges: bool = False


class WebexApiError(Exception):
    """An error answer with Webex's body: `{"message", "errors": [{"description"}], "trackingId"}`."""

    def __init__(self, status: int, message: str, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.descriptions = descriptions or (message,)
        self.headers = headers or {}

    def body(self, tracking_id: str) -> dict[str, Any]:
        return {"message": self.message, "errors": [{"description": d} for d in self.descriptions],
                "trackingId": tracking_id}


@dataclass
class Participant:
    id: str  # {instanceId}_{guid} (§3.7)
    email: str
    display_name: str
    host: bool
    co_host: bool
    invitee: bool
    devices: list[dict[str, Any]] = field(default_factory=list)  # one per join, with datetimes until rendered


@dataclass
class Instance:
    id: str  # {seriesId}_I_{n} (§3.2)
    started: datetime
    ended: datetime | None = None
    participants: dict[str, Participant] = field(default_factory=dict)


@dataclass
class Series:
    id: str
    number: str
    title: str
    agenda: str
    password: str
    start: datetime
    end: datetime
    timezone: str
    host: dict[str, Any]
    host_key: str
    options: dict[str, Any]
    invitees: list[dict[str, Any]] = field(default_factory=list)
    integration_tags: list[str] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    deleted: bool = False

    @property
    def running(self) -> Instance | None:
        return next((i for i in self.instances if i.ended is None), None)


class WebexState:
    """Everything the simulator holds, behind one lock; scenario methods are listed in SCENARIO_METHODS."""

    SCENARIO_METHODS = ("seed_person", "start_meeting", "join", "leave", "end_meeting", "set_clock", "advance",
                        "expire_tokens", "inject_fault", "clear_faults", "hold_webhooks", "release_webhooks",
                        "prepare_host", "play_class")

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "http://127.0.0.1") -> None:
        self.config = config or SimConfig()
        self.base_url = base_url
        self.clock = SimClock(self.config.start)
        self.lock = threading.RLock()
        self._random = random.Random(self.config.seed)  # noqa: S311 - ids for a fake, reproducible by seed
        self.people: dict[str, dict[str, Any]] = {}
        self.meetings: dict[str, Series] = {}
        self.tokens: dict[str, datetime] = {}  # access token -> expiry
        self.refresh_tokens = {self.config.refresh_token}
        self.links: dict[str, dict[str, Any]] = {}  # join/start link token -> what it opens
        self.faults = FaultPlan()
        self.exchanges: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.link_visits: list[dict[str, Any]] = []
        self._held: list[tuple[dict[str, Any], bytes, str]] | None = None  # deliveries kept back (hold_webhooks)
        self._calls: dict[str, list[float]] = {}
        self._http: httpx2.Client | None = None

    # -- ids and plumbing -------------------------------------------------------------------------------------

    def hex_id(self) -> str:
        return f"{self._random.getrandbits(128):032x}"

    def digits(self, count: int) -> str:
        """A number of `count` digits, not starting with 0 (meeting numbers, host keys, passwords)."""
        return str(self._random.randrange(10 ** (count - 1), 10**count))

    def guid(self) -> str:
        h = self.hex_id()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def tracking_id(self) -> str:
        return f"ROUTERGW_{self.guid()}"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def record(self, exchange: dict[str, Any]) -> None:
        if self.config.record_exchanges:
            with self.lock:
                self.exchanges.append(exchange)

    # -- tokens and limits ------------------------------------------------------------------------------------

    def issue_token(self, refresh_token: str) -> dict[str, Any]:
        token = "sim" + self.hex_id() + self.hex_id()
        self.tokens[token] = self.clock.now() + timedelta(seconds=self.config.token_ttl)
        return {"access_token": token, "expires_in": self.config.token_ttl, "refresh_token": refresh_token,
                "refresh_token_expires_in": 7776000, "token_type": "Bearer"}

    def check_token(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        valid = token == self.config.access_token or self.tokens.get(token, self.clock.now()) > self.clock.now()
        if scheme.lower() != "bearer" or not token or not valid:
            raise WebexApiError(401, "The request requires a valid access token set in the Authorization request "
                                     "header.")
        return token

    def charge(self, token: str) -> None:
        """[L] A per-token limit over one real second: Webex's limits are dynamic and unpublished (§3.9)."""
        limit = self.config.rate_limit_per_second
        if limit is None:
            return
        now = time.monotonic()
        recent = [t for t in self._calls.get(token, []) if now - t < 1.0]
        if len(recent) >= limit:
            raise WebexApiError(429, "Too many requests have been sent in a given amount of time.",
                                headers={"Retry-After": "1"})
        self._calls[token] = [*recent, now]

    def take_fault(self, path: str, method: str | None = None) -> Fault | None:
        return self.faults.take(method, path)

    # -- people and meetings ----------------------------------------------------------------------------------

    def person(self, email: str) -> dict[str, Any] | None:
        return self.people.get(email.lower())

    @staticmethod
    def hosts_here(person: dict[str, Any]) -> bool:
        """A host role on the simulator's site: the bare site name in `siteUrls` (`#attendee` cannot host)."""
        return SITE in person.get("siteUrls", [])

    def series(self, meeting_id: str) -> Series:
        series = self.meetings.get(meeting_id.split("_I_")[0])
        if series is None or series.deleted:
            raise WebexApiError(404, "The requested resource could not be found.", "Meeting not found.")
        return series

    def instance(self, meeting_id: str) -> Instance:
        """An instance by id; a series id means its last instance (§3.7)."""
        series = self.series(meeting_id)
        if "_I_" in meeting_id:
            found = next((i for i in series.instances if i.id == meeting_id), None)
        else:
            found = series.instances[-1] if series.instances else None
        if found is None:
            raise WebexApiError(404, "The requested resource could not be found.", "Meeting instance not found.")
        return found

    def web_link(self, series: Series) -> str:
        return f"{self.base_url}/{SITE.split('.')[0]}/j.php?MTID=m{series.id}"

    def meeting_json(self, series: Series, instance: Instance | None = None, *,
                     with_series_id: bool = False) -> dict[str, Any]:
        """A series (meetingType meetingSeries) or one of its held instances (meetingType meeting). The spec has
        `meetingSeriesId` (required) in List Meetings and Update answers only, not in Create or Get."""
        host = series.host
        body: dict[str, Any] = {
            "id": instance.id if instance else series.id, "meetingNumber": series.number, "title": series.title,
            "agenda": series.agenda, "password": series.password, "phoneAndVideoSystemPassword": series.number[-8:],
            "meetingType": "meeting" if instance else "meetingSeries",
            "state": self._instance_state(instance) if instance else "active",
            "timezone": series.timezone,
            "start": iso(instance.started) if instance else iso(series.start),
            "end": iso(instance.ended) if instance and instance.ended else iso(series.end),
            "hostUserId": host["id"], "hostDisplayName": host["displayName"], "hostEmail": host["emails"][0],
            "hostKey": series.host_key, "siteUrl": SITE, "webLink": self.web_link(series),
            "sipAddress": f"{series.number}@{SITE}", "dialInIpAddress": "173.243.2.68",
            "enabledAutoRecordMeeting": series.options["enabledAutoRecordMeeting"],
            "allowAnyUserToBeCoHost": False,
            "enabledJoinBeforeHost": series.options["enabledJoinBeforeHost"],
            "enableConnectAudioBeforeHost": False,
            "joinBeforeHostMinutes": series.options["joinBeforeHostMinutes"],
            "unlockedMeetingJoinSecurity": series.options["unlockedMeetingJoinSecurity"],
            "scheduledType": "meeting", "enabledBreakoutSessions": False,
            "telephony": {"accessCode": series.number, "callInNumbers": [
                {"label": "United States Toll", "callInNumber": "+1-415-655-0002", "tollType": "toll"}]},
        }
        if series.integration_tags:
            body["integrationTags"] = list(series.integration_tags)
        if with_series_id:
            body["meetingSeriesId"] = series.id
        if instance:
            body["hostDidJoin"] = any(p.host for p in instance.participants.values())
            body["attendeeDidJoin"] = any(not p.host for p in instance.participants.values())
        return body

    def _instance_state(self, instance: Instance) -> str:
        return "inProgress" if instance.ended is None else "ended"

    def listed_instances(self, series: Series) -> list[Instance]:
        """Instances List Meetings shows: running ones, and ended ones once `report_delay` has passed (§3.2)."""
        now = self.clock.now()
        return [i for i in series.instances if i.ended is None or i.ended + self.config.report_delay <= now]

    def participant_json(self, instance: Instance, participant: Participant, series: Series) -> dict[str, Any]:
        devices = [self._device_json(d) for d in participant.devices]
        joined = [d["joinedTime"] for d in participant.devices]
        left = [d["leftTime"] for d in participant.devices if d["leftTime"] is not None]
        still_in = any(d["leftTime"] is None for d in participant.devices)
        body: dict[str, Any] = {
            "id": participant.id, "orgId": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9zaW0",
            "host": participant.host, "coHost": participant.co_host, "spaceModerator": False,
            "email": participant.email, "displayName": participant.display_name, "invitee": participant.invitee,
            "muted": True, "meetingStartTime": iso(instance.started), "video": "off",
            "state": "joined" if still_in else "end", "siteUrl": SITE, "meetingId": instance.id,
            "hostEmail": series.host["emails"][0], "devices": devices,
        }
        if not participant.email:
            del body["email"]  # [L] a guest who typed no email has none
        # [L] the participant's span runs from the first join to the last leave; absent while still in.
        body["joinedTime"] = iso(min(joined))
        if not still_in and left:
            body["leftTime"] = iso(max(left))
        return body

    @staticmethod
    def _device_json(device: dict[str, Any]) -> dict[str, Any]:
        body = {"correlationId": device["correlationId"], "deviceType": device["deviceType"],
                "audioType": device["audioType"], "joinedTime": iso(device["joinedTime"])}
        if device["leftTime"] is not None:  # still in: no leftTime yet (§3.7)
            body["leftTime"] = iso(device["leftTime"])
            body["durationSecond"] = int((device["leftTime"] - device["joinedTime"]).total_seconds())
        return body

    # -- webhooks ---------------------------------------------------------------------------------------------

    def deliver(self, resource: str, event: str, data: dict[str, Any]) -> None:
        """One signed delivery to `webhook_url`, shaped as §3.8 says; outside the lock (the receiver may call back).
        [L] Webex's retry policy is undocumented: a failed delivery is recorded, not retried."""
        url = self.config.webhook_url
        if not url:
            return
        body = {"id": self.hex_id(), "name": f"viltbridge {resource}", "targetUrl": url, "resource": resource,
                "event": event, "orgId": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9zaW0", "createdBy": "sim",
                "appId": "sim-app", "ownedBy": "org", "status": "active", "created": iso(self.clock.now()),
                "actorId": "sim", "data": data}
        raw = json.dumps(body).encode()
        signature = hmac.new(self.config.webhook_secret.encode(), raw, hashlib.sha1).hexdigest()
        with self.lock:
            if self._held is not None:
                self._held.append((body, raw, signature))
                return
        self._post(url, body, raw, signature)

    def _post(self, url: str, body: dict[str, Any], raw: bytes, signature: str) -> dict[str, Any]:
        if self._http is None:
            self._http = httpx2.Client(timeout=5)
        try:
            answer = self._http.post(url, content=raw, headers={"Content-Type": "application/json",
                                                                "X-Spark-Signature": signature})
            status = str(answer.status_code)
        except httpx2.HTTPError as exc:
            status = f"failed: {type(exc).__name__}"
        delivery = {"resource": body["resource"], "event": body["event"], "status": status, "body": body}
        self.deliveries.append(delivery)
        return delivery

    # -- scenario API -----------------------------------------------------------------------------------------

    def seed_person(self, email: str, first_name: str = "", last_name: str = "", licensed: bool = True,
                    status: str = "active", login_enabled: bool = True,
                    site_urls: list[str] | None = None) -> dict[str, Any]:
        """A person of the org; `licensed` gives them a Meetings licence on the simulator's site (host rights).
        `status` is presence, as in Webex; `login_enabled` is the account's sign-in switch in Control Hub;
        `site_urls` replaces the roles `licensed` implies (`site#attendee` is an attendee role, a bare site a host
        role, as the people API writes them)."""
        if site_urls is None:
            site_urls = [SITE] if licensed else []
        with self.lock:
            person = {"id": "Y2lzY29zcGFyazovL3VzL1BFT1BMRS8" + self.hex_id()[:20], "emails": [email],
                      "displayName": f"{first_name} {last_name}".strip() or email, "firstName": first_name,
                      "lastName": last_name, "orgId": "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9zaW0",
                      "licenses": ["Y2lzY29zcGFyazovL3VzL0xJQ0VOU0UvTUM"] if licensed else [],
                      "siteUrls": list(site_urls), "status": status, "type": "person",
                      "invitePending": "false", "loginEnabled": "true" if login_enabled else "false",
                      "created": iso(self.clock.now())}
            self.people[email.lower()] = person
            return person

    def start_meeting(self, meeting_id: str, at: str | datetime | None = None) -> dict[str, Any]:
        """A new instance of the series (a restart after an end is another instance)."""
        with self.lock:
            series = self.series(meeting_id)
            if series.running is not None:
                return {"instance_id": series.running.id}
            instance = Instance(id=f"{series.id}_I_{self.digits(18)}",
                                started=self._when(at))
            series.instances.append(instance)
            data = self.meeting_json(series, instance)
        self.deliver("meetings", "started", data)
        return {"instance_id": instance.id}

    def join(self, meeting_id: str, display_name: str, email: str = "", at: str | datetime | None = None,
             device_type: str = "webex_web_client", audio_type: str = "voip") -> dict[str, Any]:
        """Someone joins (starting an instance if none runs). The same email again is another device join of the
        same participant (§3.7 multiple joins)."""
        self.start_meeting(meeting_id, at)
        with self.lock:
            series = self.series(meeting_id)
            instance = series.running
            assert instance is not None
            key = email.lower() or display_name
            participant = instance.participants.get(key)
            if participant is None:
                host_email = series.host["emails"][0].lower()
                cohosts = {i["email"].lower() for i in series.invitees if i.get("coHost")}
                participant = Participant(
                    id=f"{instance.id}_{self.guid()}", email=email, display_name=display_name,
                    host=key == host_email, co_host=key in cohosts,
                    invitee=key in {i["email"].lower() for i in series.invitees} or key == host_email)
                instance.participants[key] = participant
            participant.devices.append({"correlationId": self.guid(), "deviceType": device_type,
                                        "audioType": audio_type, "joinedTime": self._when(at), "leftTime": None})
            data = self.participant_json(instance, participant, series)
        self.deliver("meetingParticipants", "joined", data)
        return {"participant_id": participant.id, "instance_id": instance.id}

    def leave(self, meeting_id: str, who: str, at: str | datetime | None = None) -> dict[str, Any]:
        """`who` (an email, a display name or a participant id) leaves: their open device join closes."""
        with self.lock:
            series = self.series(meeting_id)
            instance = series.running
            if instance is None:
                raise ValueError("the meeting is not running")
            participant = next((p for k, p in instance.participants.items() if who.lower() in (k, p.id.lower())),
                               None)
            if participant is None:
                raise ValueError(f"{who} is not in the meeting")
            open_ = [d for d in participant.devices if d["leftTime"] is None]
            if not open_:
                raise ValueError(f"{who} has already left")
            open_[-1]["leftTime"] = self._when(at)
            data = self.participant_json(instance, participant, series)
            data["leftTime"] = iso(open_[-1]["leftTime"])
        self.deliver("meetingParticipants", "left", data)
        return {"participant_id": participant.id}

    def end_meeting(self, meeting_id: str, at: str | datetime | None = None) -> dict[str, Any]:
        """The host ends the running instance: everyone still in leaves at that moment."""
        with self.lock:
            series = self.series(meeting_id)
            instance = series.running
            if instance is None:
                raise ValueError("the meeting is not running")
            ended = self._when(at)
            for participant in instance.participants.values():
                for device in participant.devices:
                    if device["leftTime"] is None:
                        device["leftTime"] = ended
            instance.ended = ended
            data = self.meeting_json(series, instance)
        self.deliver("meetings", "ended", data)
        return {"instance_id": instance.id}

    # -- the conformance kit's uniform class (see providers/class_scenario.py) ---------------------------------

    def prepare_host(self, email: str) -> dict[str, Any]:
        """A licensed person with this email (a host on the site), added unless they exist."""
        with self.lock:
            existing = self.person(email)
            if existing is not None and existing.get("licenses"):
                return existing
        return self.seed_person(email, licensed=True)

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class: each personal link (`/webex/{join|start}/{token}`) is its holder joining at `start`;
        each leaves after their minutes, the last one out ends it, and the clock moves past `report_delay` so
        the instance is listed with its participants."""
        begin, seats = parse_class(start, join_urls)
        with self.lock:
            holders = {}
            for seat in seats:
                kind, _, token = seat.path.removeprefix("/webex/").partition("/")
                entry = self.links.get(token)
                if entry is None or entry["kind"] != kind:
                    raise ValueError(f"{seat.url}: not a personal link this Webex handed out")
                if entry["expires"] <= begin:
                    raise ValueError(f"{seat.url}: the link expires at {iso(entry['expires'])}, before {iso(begin)}")
                holders[seat.url] = entry
        meeting_id = only_meeting([entry["meeting_id"] for entry in holders.values()])
        self.set_clock(begin)
        self.start_meeting(meeting_id, begin)
        for seat in seats:
            entry = holders[seat.url]
            self.join(meeting_id, entry["display_name"], entry["email"], begin)
        ordered = by_leaving_time(seats)
        for seat in ordered[:-1]:
            self.leave(meeting_id, holders[seat.url]["email"], seat.leaves_at(begin))
        end = ordered[-1].leaves_at(begin)
        self.end_meeting(meeting_id, end)
        self.set_clock(end + self.config.report_delay + timedelta(minutes=1))
        return {"meeting_id": meeting_id, "started": iso(begin), "ended": iso(end), "people": len(seats)}

    def set_clock(self, at: str | datetime) -> dict[str, Any]:
        with self.lock:
            self.clock.set(self._when(at))
            return {"now": iso(self.clock.now())}

    def advance(self, seconds: float) -> dict[str, Any]:
        with self.lock:
            self.clock.set(self.clock.now() + timedelta(seconds=float(seconds)))
            return {"now": iso(self.clock.now())}

    def expire_tokens(self) -> dict[str, Any]:
        """Every issued access token stops working now (as after 14 days): clients must refresh."""
        with self.lock:
            self.tokens.clear()
            return {"expired": True}

    def inject_fault(self, status: int | None = None, count: int = 1, path: str = "",
                     retry_after: str | None = None, delay: float = 0.0,
                     method: str | None = None) -> dict[str, Any]:
        """The next `count` API calls whose path contains `path` (and whose method is `method`, when given) wait
        `delay` real seconds, then answer `status` (429 with Retry-After), or answer normally when no status."""
        return self.faults.add(status, count=count, delay=delay, method=method, path=path, retry_after=retry_after)

    def clear_faults(self) -> dict[str, Any]:
        return self.faults.clear()

    def hold_webhooks(self) -> dict[str, Any]:
        """Deliveries are kept back from now on, until `release_webhooks` (a receiver that is slow or down)."""
        with self.lock:
            if self._held is None:
                self._held = []
            return {"held": len(self._held)}

    def release_webhooks(self, order: str = "sent", duplicate: int = 1, seed: int = 0) -> list[dict[str, Any]]:
        """Post the held deliveries, each `duplicate` times (byte-identical, same signature), in `order`: "sent",
        "reversed" or "shuffled" (by `seed`); later deliveries are posted at once again. [L] Webex documents
        neither its retry policy nor any ordering guarantee, so a receiver must take repeats and any order."""
        if order not in ("sent", "reversed", "shuffled"):
            raise ValueError("order must be sent, reversed or shuffled")
        if int(duplicate) < 1:
            raise ValueError("duplicate must be at least 1")
        with self.lock:
            held, self._held = self._held or [], None
        queue = [item for item in held for _ in range(int(duplicate))]
        if order == "reversed":
            queue.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(queue)  # noqa: S311 - a reproducible order for a test
        url = self.config.webhook_url
        if not url:
            return []
        return [{key: value for key, value in self._post(url, body, raw, signature).items() if key != "body"}
                for body, raw, signature in queue]

    def _when(self, at: str | datetime | None) -> datetime:
        if at is None:
            return self.clock.now()
        if isinstance(at, str):
            return parse_time(at, "at")
        return at.astimezone(UTC)
