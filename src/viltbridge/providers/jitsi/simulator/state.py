"""The simulated Jitsi world (JaaS at 8x8.vc, or a self-hosted server with token auth): rooms, who is in them, the
clock, the token check, and the signed webhooks (docs/providers.md §6). Guesses are marked [L].

- Tokens are checked as the service does: signature (RS256 with the uploaded public key, picked by `kid` =
  `<AppID>/<keyId>`; or HS256 with the app secret), `aud`, `iss`, `sub`, `room` (the room or "*"), `nbf`/`exp`
  against the simulator's clock (no leeway [L]).
- A room is created by its first join (ROOM_CREATED, a new sessionId) and destroyed when the last person leaves
  (ROOM_DESTROYED), or by `destroy_room`.
- Each event is posted to `webhook_url` signed with `X-Jaas-Signature` (t = the simulator's clock), retried on a
  non-2xx answer or no answer up to `delivery_attempts` times (no real waiting [L]); `duplicate_deliveries` sends
  each delivery twice; `hold_deliveries` keeps them until `flush_webhooks`, which sends the held ones newest first
  (out of order).

The scenario API (`SCENARIO_METHODS`, also `POST /_sim/{method}`) scripts people and time.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from viltbridge.providers.class_scenario import by_leaving_time, only_meeting, parse_class
from viltbridge.providers.jitsi.webhooks import SIGNATURE_HEADER, signature_header

SIM_APP_ID = "vpaas-magic-cookie-0123456789abcdef0123456789abcdef"
SIM_KEY_ID = "sim-key-1"
SIM_WEBHOOK_SECRET = "whsec_simulated-jaas-endpoint-secret"  # noqa: S105 - the simulator's own, published
SIM_APP_SECRET = "simulated-self-hosted-jitsi-app-secret-0123456789"  # noqa: S105 - published
CUSTOMER_ID = SIM_APP_ID.removeprefix("vpaas-magic-cookie-")


@functools.cache
def demo_private_key_pem() -> str:
    """The simulator's RSA key pair (made once per process): its private half goes into the adapter's settings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def public_key_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


class TokenRefused(Exception):
    """The page's answer to a bad token: `status` 401 (no valid token) or 403 (a valid token for elsewhere)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SimConfig:
    deployment: Literal["jaas", "self_hosted"] = "jaas"
    app_id: str = SIM_APP_ID  # self-hosted: prosody's app_id
    key_id: str = SIM_KEY_ID
    private_key_pem: str = field(default_factory=demo_private_key_pem, repr=False)
    # The public keys uploaded in the console, by key id (default: the private key's own public half).
    public_keys: dict[str, str] | None = field(default=None, repr=False)
    app_secret: str = field(default=SIM_APP_SECRET, repr=False)
    domain: str = "meet.sim.example"  # self-hosted XMPP domain (the JWT `sub`)
    webhook_secret: str = field(default=SIM_WEBHOOK_SECRET, repr=False)
    webhook_url: str | None = None  # where events are posted; None posts nothing
    delivery_attempts: int = 3
    duplicate_deliveries: bool = False
    hold_deliveries: bool = False
    start: datetime | None = None  # freeze the clock here; None follows the real time


@dataclass
class Participant:
    jid: str
    user_id: str
    name: str
    email: str
    moderator: bool
    joined_at: datetime


@dataclass
class Room:
    name: str
    session_id: str
    created_at: datetime
    present: dict[str, Participant] = field(default_factory=dict)  # by jid


@dataclass
class Delivery:
    event: dict[str, Any]
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    statuses: list[int | None] = field(default_factory=list)  # one per attempt


class JitsiState:
    SCENARIO_METHODS: ClassVar[tuple[str, ...]] = (
        "join", "join_with_link", "leave", "destroy_room", "advance", "flush_webhooks", "room_names", "present",
        "events", "prepare_host", "play_class")

    def __init__(self, config: SimConfig | None = None, *, base_url: str = "") -> None:
        self.config = config or SimConfig()
        self.base_url = base_url
        self.lock = threading.RLock()
        self._now = self.config.start
        self.rooms: dict[str, Room] = {}  # live rooms by (lower-case) name
        self.history: list[dict[str, Any]] = []  # every event, in the order it happened
        self.deliveries: list[Delivery] = []  # every delivery posted (with its attempts)
        self.held: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []  # every refused token: status and reason
        self._public_keys = self.config.public_keys or {self.config.key_id: public_key_pem(self.config.private_key_pem)}
        self._jids = 0

    def close(self) -> None:
        self.rooms.clear()

    @property
    def jaas(self) -> bool:
        return self.config.deployment == "jaas"

    # --- clock -----------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    def advance(self, seconds: float) -> str:
        with self.lock:
            self._now = self.now() + timedelta(seconds=seconds)
            return self.now().isoformat()

    # --- tokens ----------------------------------------------------------------------------------------------

    def verify_token(self, token: str, room: str, app_id: str | None = None) -> dict[str, Any]:
        """The token's claims if the service would let its holder into `room`; TokenRefused otherwise."""
        config = self.config
        if not token:
            raise TokenRefused(401, "no token: this room needs a jwt")
        if self.jaas and app_id != config.app_id:
            raise TokenRefused(404, f"no such app {app_id!r}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRefused(401, "not a JWT") from None
        if self.jaas:
            if header.get("alg") != "RS256":
                raise TokenRefused(401, f"alg {header.get('alg')!r}: JaaS accepts RS256 only")
            kid = str(header.get("kid") or "")
            key_app, _, key_id = kid.partition("/")
            if key_app != config.app_id or key_id not in self._public_keys:
                raise TokenRefused(401, f"unknown kid {kid!r}")
            key: Any = self._public_keys[key_id]
            algorithms, audience, issuer, subject = ["RS256"], "jitsi", "chat", config.app_id
        else:
            if header.get("alg") != "HS256":
                raise TokenRefused(401, f"alg {header.get('alg')!r}: this server accepts HS256 only")
            key, algorithms = config.app_secret, ["HS256"]
            audience, issuer, subject = config.app_id, config.app_id, config.domain
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, audience=audience, issuer=issuer,
                options={"require": ["exp", "aud", "iss", "sub", "room"], "verify_nbf": False, "verify_exp": False,
                         "verify_iat": False})
        except jwt.InvalidSignatureError:
            raise TokenRefused(401, "bad signature") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(401, f"wrong aud (expected {audience!r})") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused(401, f"wrong iss (expected {issuer!r})") from None
        except jwt.InvalidTokenError as err:
            raise TokenRefused(401, f"invalid token: {err}") from None
        if claims.get("sub") not in (subject, "*"):
            raise TokenRefused(403, f"wrong sub {claims.get('sub')!r} (expected {subject!r})")
        if str(claims.get("room", "")).lower() not in (room.lower(), "*"):
            raise TokenRefused(403, f"token is for room {claims.get('room')!r}, not {room!r}")
        now = self.now().timestamp()
        if isinstance(claims.get("nbf"), int | float) and now < claims["nbf"]:
            raise TokenRefused(401, "token not valid yet (nbf)")
        if now >= claims["exp"]:
            raise TokenRefused(401, "token expired (exp)")
        return claims

    def join_with_link(self, path: str, token: str) -> dict[str, Any]:
        """What opening a meeting link does: `path` is `/{AppID}/{room}` (JaaS) or `/{room}` (self-hosted)."""
        parts = [part for part in path.split("/") if part]
        if len(parts) != (2 if self.jaas else 1):
            raise TokenRefused(404, f"no meeting at {path!r}")
        app_id, room = (parts[0], parts[1]) if self.jaas else (None, parts[0])
        try:
            claims = self.verify_token(token, room, app_id)
        except TokenRefused as refused:
            self.refusals.append({"path": path, "status": refused.status, "reason": refused.reason})
            raise
        user = dict((claims.get("context") or {}).get("user") or {})
        return self.join(room, str(user.get("name") or ""), email=str(user.get("email") or ""),
                         user_id=str(user.get("id") or ""), moderator=str(user.get("moderator")) == "true")

    # --- people ----------------------------------------------------------------------------------------------

    def join(self, room: str, name: str, email: str = "", user_id: str = "", moderator: bool = False) -> dict[str, Any]:
        """Someone enters `room` (creating it if empty). Their jid is new for every join (a new connection)."""
        with self.lock:
            key = room.lower()
            live = self.rooms.get(key)
            if live is None:
                live = self.rooms[key] = Room(key, str(uuid.uuid4()), self.now())
                self._event(live, "ROOM_CREATED", {"conference": self._conference(key), "isBreakout": False})
            self._jids += 1
            jid = f"{uuid.uuid4().hex[:8]}-{self._jids}@{self._muc()}/{uuid.uuid4().hex[:8]}"
            person = Participant(jid, user_id, name, email, moderator, self.now())
            live.present[jid] = person
            self._event(live, "PARTICIPANT_JOINED", self._participant_data(person))
            return {"room": key, "jid": jid, "session_id": live.session_id}

    def leave(self, room: str, who: str) -> dict[str, Any]:
        """`who` leaves: a jid, a user id or an email (the most recent of their connections)."""
        with self.lock:
            live = self.rooms[room.lower()]
            matches = [p for p in live.present.values() if who in (p.jid, p.user_id, p.email)]
            if not matches:
                raise KeyError(f"{who!r} is not in {room!r}")
            person = matches[-1]
            del live.present[person.jid]
            self._event(live, "PARTICIPANT_LEFT", self._participant_data(person) | {"disconnectReason": "left"})
            if not live.present:
                self._destroy(live)
            return {"room": live.name, "left": person.jid, "remaining": len(live.present)}

    def destroy_room(self, room: str) -> dict[str, Any]:
        """The room ends for everyone (a moderator's "end meeting for all")."""
        with self.lock:
            live = self.rooms[room.lower()]
            for person in list(live.present.values()):
                del live.present[person.jid]
                self._event(live, "PARTICIPANT_LEFT", self._participant_data(person) | {"disconnectReason": "kicked"})
            self._destroy(live)
            return {"room": live.name, "session_id": live.session_id}

    # --- the conformance kit's uniform class (see providers/class_scenario.py) ------------------------------

    def prepare_host(self, email: str) -> dict[str, Any]:
        """Jitsi has no accounts: a moderator token makes the host."""
        return {"email": email, "note": "Jitsi has no host accounts; nothing to prepare"}

    def play_class(self, start: str, join_urls: list[dict[str, Any]]) -> dict[str, Any]:
        """The kit's class: each link (`/{AppID}/{room}?jwt=`) is checked as the service checks it at `start`
        and its holder joins; each leaves after their minutes and the last one out closes the room. Webhooks are
        held during the class and delivered after the clock is put back to now: they arrive late, each event
        stamped with when it happened and signed when it is sent, as a JaaS retry would be."""
        begin, seats = parse_class(start, join_urls)
        with self.lock:
            saved_now, saved_config = self._now, self.config
            self._now = begin
            self.config = replace(self.config, hold_deliveries=True)
            try:
                joined = {}
                for seat in seats:
                    try:
                        joined[seat.url] = self.join_with_link(seat.path, seat.query("jwt"))
                    except TokenRefused as refused:
                        raise ValueError(f"{seat.url}: refused ({refused.status}): {refused.reason}") from None
                room = only_meeting([entry["room"] for entry in joined.values()])
                ordered = by_leaving_time(seats)
                for seat in ordered:
                    self._now = seat.leaves_at(begin)
                    self.leave(room, joined[seat.url]["jid"])
                end = self._now
            finally:
                self._now, self.config = saved_now, saved_config
                if saved_config.hold_deliveries:
                    held: list[dict[str, Any]] = []
                else:
                    held, self.held = self.held, []
        statuses = [self._deliver(event) for event in held] if self.config.webhook_url is not None else []
        return {"room": room, "started": begin.isoformat(), "ended": end.isoformat(), "people": len(seats),
                "webhook_statuses": statuses}

    def room_names(self) -> list[str]:
        return sorted(self.rooms)

    def present(self, room: str) -> list[dict[str, Any]]:
        live = self.rooms.get(room.lower())
        return [self._participant_data(p) for p in live.present.values()] if live else []

    def events(self) -> list[dict[str, Any]]:
        return list(self.history)

    # --- events and webhooks ---------------------------------------------------------------------------------

    def _muc(self) -> str:
        return f"conference.{self.config.domain}"

    def _conference(self, room: str) -> str:
        prefix = f"{self.config.app_id}_" if self.jaas else ""
        return f"{prefix}{room}@{self._muc()}"

    def _participant_data(self, person: Participant) -> dict[str, Any]:
        return {"moderator": person.moderator, "name": person.name, "group": "", "email": person.email,
                "id": person.user_id, "participantJid": person.jid, "isBreakout": False, "breakoutRoomId": ""}

    def _destroy(self, live: Room) -> None:
        self._event(live, "ROOM_DESTROYED", {"conference": self._conference(live.name), "isBreakout": False})
        self.rooms.pop(live.name, None)

    def _event(self, live: Room, event_type: str, data: dict[str, Any]) -> None:
        fqn = f"{self.config.app_id}/{live.name}" if self.jaas else live.name
        event = {"idempotencyKey": str(uuid.uuid4()), "customerId": CUSTOMER_ID, "appId": self.config.app_id,
                 "eventType": event_type, "sessionId": live.session_id,
                 "timestamp": int(self.now().timestamp() * 1000), "fqn": fqn, "data": data}
        self.history.append(event)
        if self.config.webhook_url is None:
            return
        if self.config.hold_deliveries:
            self.held.append(event)
        else:
            self._deliver(event)

    def flush_webhooks(self) -> list[int | None]:
        """Send the held deliveries, newest first (JaaS does not promise order)."""
        with self.lock:
            held, self.held = self.held, []
        return [self._deliver(event) for event in reversed(held)]

    def _deliver(self, event: dict[str, Any]) -> int | None:
        """POST one event (twice with `duplicate_deliveries`), retried up to `delivery_attempts` times on a
        non-2xx answer or no answer. Synchronous: the caller (a scenario step) sees the outcome. Each attempt is
        signed afresh, as a retry is a new request."""
        url = self.config.webhook_url
        assert url is not None
        body = json.dumps(event, separators=(",", ":"))
        status: int | None = None
        for _copy in range(2 if self.config.duplicate_deliveries else 1):
            delivery = Delivery(event=event, body=body)
            self.deliveries.append(delivery)
            for _attempt in range(max(1, self.config.delivery_attempts)):
                stamp = int(self.now().timestamp())
                delivery.headers = {"Content-Type": "application/json", "User-Agent": "JaaS-Webhooks/sim",
                                    SIGNATURE_HEADER: signature_header(body.encode(), self.config.webhook_secret,
                                                                       stamp)}
                try:
                    status = httpx2.post(url, content=body, headers=delivery.headers, timeout=10).status_code
                except httpx2.HTTPError:
                    status = None
                delivery.statuses.append(status)
                if status is not None and 200 <= status < 300:
                    break
        return status
