"""Brute-force throttle on sign-in: the LMS's Basic credentials and `/oauth/token`, and the console's sign-in form.

Failed attempts are counted per client address and account tried, and per client address alone (a higher limit,
against one address trying many accounts). Once a count reaches its limit within the window, further attempts
from that address (for that account) are answered 429 until the window ends, without checking any password.

- **Successful sign-ins are never slowed**: the check is a lookup in this process's memory of blocked keys;
  counters are only written (in Redis when several processes share one, `Settings.shared_rate_limit_url`) when an
  attempt fails. A process learns that a key is blocked when a failure it records reaches the limit, so across N
  processes an address gets at most `limit + N - 1` checked attempts per window.
- **One address does not lock out others**, and one account's wrong password at an address several LMS tenants
  share (Cornerstone calls from its own data centres) blocks that account there, not every tenant's calls;
  only the per-address limit, ten times higher by default, covers them all.
- **The client address** is the socket peer (as the ASGI server reports it); `X-Forwarded-For` is honoured only
  when the peer is one of `VILTBRIDGE_TRUSTED_PROXIES`, reading from the right past trusted proxies. IPv6 clients
  count per /64, the block one subscriber usually gets.
- Counter keys are HMACs under a key derived from the server keyring: Redis never holds addresses or account names,
  and two deployments (or two test apps) sharing a Redis never share counters.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import Scope

from viltbridge.config import Settings
from viltbridge.core.clock import Clock
from viltbridge.core.errors import DomainError
from viltbridge.security.crypto import Keyring

__all__ = ["AuthThrottle", "MemoryFailures", "RedisFailures", "SignInThrottled", "client_address"]

log = logging.getLogger("viltbridge.web.throttle")

# Failures per address alone, as a multiple of the per-account limit.
ADDRESS_LIMIT_FACTOR = 10
# Keys a process remembers at most (each about 200 bytes); beyond, the oldest windows are forgotten first.
MAX_REMEMBERED_KEYS = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SignInThrottled(DomainError):
    """Too many failed sign-ins from one address: nothing was checked; `retry_after_seconds` says how long."""

    status = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class FailureCounts(Protocol):
    async def add(self, key: str, window_seconds: int) -> tuple[int, float]:
        """Count one failure for `key`; the count in the current window and the seconds until that window ends."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class MemoryFailures:
    """Fixed windows in this process's memory (one process, or no Redis)."""

    clock: Clock
    _windows: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)

    async def add(self, key: str, window_seconds: int) -> tuple[int, float]:
        now = self.clock.now().timestamp()
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_seconds
            self._windows.pop(key, None)  # a new window goes to the end of the eviction order
        self._windows[key] = (count + 1, ends)
        while len(self._windows) > MAX_REMEMBERED_KEYS:
            self._windows.popitem(last=False)
        return count + 1, ends - now

    async def aclose(self) -> None:
        self._windows.clear()


class RedisFailures:
    """Fixed windows in Redis, shared by every process: INCR, and the window's expiry set by its first failure."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self._redis: Any = redis.asyncio.Redis.from_url(url)

    async def add(self, key: str, window_seconds: int) -> tuple[int, float]:
        name = f"viltbridge:signin-failures:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds, nx=True)
            pipe.pttl(name)
            count, _, ttl_ms = await pipe.execute()
        return int(count), max(int(ttl_ms), 0) / 1000

    async def aclose(self) -> None:
        await self._redis.aclose()


def parse_networks(spec: str) -> tuple[Network, ...]:
    """VILTBRIDGE_TRUSTED_PROXIES as networks; ValueError names an entry that is not an address or CIDR."""
    found: list[Network] = []
    for entry in (item.strip() for item in spec.split(",")):
        if entry:
            try:
                found.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"VILTBRIDGE_TRUSTED_PROXIES: '{entry}' is not an IP address or CIDR; list the "
                                 "reverse proxies' addresses, e.g. 10.0.0.5,10.1.0.0/24.") from None
    return tuple(found)


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(scope: Scope, trusted_proxies: Sequence[Network] = ()) -> str:
    """The address that made the request: the peer, or, behind trusted proxies, the right-most address in
    X-Forwarded-For that is not one of them."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed([hop for hop in forwarded if hop]):
        if not _in(hop, trusted_proxies):
            return hop
    return peer


def _counted_address(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


class AuthThrottle:
    """One per application: which sign-in attempts are answered 429, and the counting of failures."""

    def __init__(self, *, limit: int, window_seconds: int, counts: FailureCounts, key: bytes, clock: Clock,
                 trusted_proxies: Iterable[Network] = ()) -> None:
        self.limit = limit
        self.address_limit = limit * ADDRESS_LIMIT_FACTOR
        self.window_seconds = window_seconds
        self.trusted_proxies = tuple(trusted_proxies)
        self._counts = counts
        self._key = key
        self._clock = clock
        self._blocked: dict[str, float] = {}  # key -> when the block ends (epoch seconds)

    @classmethod
    def from_settings(cls, settings: Settings, keyring: Keyring, clock: Clock) -> AuthThrottle:
        url = settings.shared_rate_limit_url
        counts: FailureCounts = RedisFailures(url) if url else MemoryFailures(clock)
        return cls(limit=settings.auth_failure_limit, window_seconds=settings.auth_failure_window_seconds,
                   counts=counts, key=keyring.derived("sign-in-throttle")[0], clock=clock,
                   trusted_proxies=parse_networks(settings.trusted_proxies))

    def _keys(self, scope: Scope, realm: str, account: str | None) -> list[tuple[str, int]]:
        address = _counted_address(client_address(scope, self.trusted_proxies))
        keys = [(self._hashed(realm, address, ""), self.address_limit)]
        if account is not None:
            keys.append((self._hashed(realm, address, account.strip().lower()), self.limit))
        return keys

    def _hashed(self, realm: str, address: str, account: str) -> str:
        message = f"{realm}\x00{address}\x00{account}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def retry_after(self, scope: Scope, realm: str, account: str | None) -> int:
        """Seconds this attempt must wait (0: check the credentials). `realm` is "lms" or "console"; `account` the
        username or email tried, None when the attempt names none (a bearer token)."""
        if not self._blocked:
            return 0  # the common case: nothing blocked anywhere, no address parsed
        now = self._clock.now().timestamp()
        wait = 0.0
        for key, _ in self._keys(scope, realm, account):
            ends = self._blocked.get(key)
            if ends is not None:
                if ends <= now:
                    del self._blocked[key]
                else:
                    wait = max(wait, ends - now)
        return math.ceil(wait)

    async def failed(self, scope: Scope, realm: str, account: str | None) -> None:
        """Count a failed attempt; a key that reaches its limit is blocked for the rest of its window."""
        now = self._clock.now().timestamp()
        for key, limit in self._keys(scope, realm, account):
            try:
                count, seconds_left = await self._counts.add(key, self.window_seconds)
            except Exception as exc:  # a counter store that is away must not turn wrong passwords into 500s
                log.warning("sign-in failure not counted (%s: %s); the throttle is open until it is back",
                            exc.__class__.__name__, exc)
                return
            if count >= limit and seconds_left > 0:
                if not self._blocked:
                    log.warning("sign-in throttle engaged: %s failures from one %s address within %d s",
                                count, realm, self.window_seconds)
                self._blocked[key] = now + seconds_left
        if len(self._blocked) > MAX_REMEMBERED_KEYS:
            self._blocked = {key: ends for key, ends in self._blocked.items() if ends > now}

    def message(self, realm: str, seconds: int) -> str:
        minutes = max(1, math.ceil(seconds / 60))
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        if realm == "console":
            return (f"Too many failed sign-ins from your network address, so sign-in is paused for it. Wait {wait} "
                    "and try again; if you have forgotten your password, ask a viltbridge administrator to set a "
                    "new one.")
        return (f"Too many calls with wrong credentials came from this address, so viltbridge is not checking "
                f"credentials from it for {wait}. Correct the username and password entered for this vendor in "
                f"Cornerstone Edge, then try again after {seconds} seconds.")

    async def aclose(self) -> None:
        await self._counts.aclose()
