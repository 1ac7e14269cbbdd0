"""The one way viltbridge talks HTTP to meeting providers (Zoom now; Teams, Webex, GoTo, BigBlueButton later).

Every provider call goes through `ProviderHttp.request`, which

- authenticates through a pluggable `Auth` (cached bearer tokens, ...) and, on a 401, retries once with headers
  refreshed by the `Auth` (concurrent 401s share one refresh);
- takes a slot from each named client-side rate-limit bucket (`Quota`, kept by pyrate-limiter in `RateLimits`;
  in-memory now, the bucket backend is injectable for PostgreSQL/Redis later). A call waits at most its budget's
  `max_queue_wait` for a slot, then fails fast with `RateLimitExceeded` instead of blocking;
- retries transient failures with stamina: 429 (after `Retry-After`, or Zoom's `X-RateLimit-Type`), 5xx,
  timeouts and dropped connections, all within the call's total time `Budget`. A request that may have reached
  the provider (5xx, read timeout, connection lost mid-way) is repeated only when it is idempotent (GET, PUT,
  DELETE, ... or `idempotent=True`); a refused connection or a 429 is always safe to repeat;
- runs inside the provider account's pybreaker circuit breaker: after `fail_max` outages in a row (no answer, or
  5xx after retries) calls fail at once with `CircuitOpen` until `reset_timeout` has passed;
- logs each exchange at DEBUG: method, URL with secret query parameters blanked, status, elapsed ms and bodies
  through `observability.redacted_body` (tokens, secrets and join/start links blanked). The log handler shows
  DEBUG lines only for requests that asked for debug (see `observability`), and bodies are only redacted and
  formatted when a line is actually written;
- raises `ProviderFailed` subclasses whose message says what happened and what to do: `ProviderApiError` carries
  the provider's own HTTP status, error code and message for callers that branch on them.

One `ProviderHttp` per provider account and event loop (it owns an `httpx2.AsyncClient`); rate-limit buckets and
circuit breakers are per process by default (`shared_limits()`, `account_breaker()`), so every client of one
account shares them.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from inspect import isawaitable
from typing import Any, Protocol, Self, TypeVar

import httpx2
import pybreaker
import stamina
from pyrate_limiter import AbstractBucket, FixedWindow, InMemoryBucket, Rate, RateItem, WallClock

from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import HealthItem, SettingsSink
from viltbridge.core.redaction import redact
from viltbridge.observability import redacted_body
from viltbridge.providers.url_guard import AddressRefused, current_policy, guarded_transport

__all__ = [
    "BULK", "INTERACTIVE", "Auth", "BucketBackend", "Budget", "CircuitOpen", "ProviderApiError", "ProviderCallFailed",
    "ProviderHttp", "ProviderUnreachable", "ProviderUrlRefused", "Quota", "QuotaExhausted", "RateLimitExceeded",
    "RateLimits", "account_breaker", "memory_buckets", "new_breaker", "parse_retry_after", "shared_limits",
]

log = logging.getLogger("viltbridge.providers.http")

T = TypeVar("T")

# Methods whose repetition has the same effect as one call (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


# ---------------------------------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class Budget:
    """How long one call may take, all in: waiting for rate-limit slots, attempts and backoff between them."""

    total: float  # seconds, from the call until its result or its error
    max_queue_wait: float  # the longest wait for a client-side rate-limit slot before failing fast
    attempt_timeout: float  # the longest wait for one response
    max_attempts: int = 5
    connect_timeout: float = 5.0


# A person is waiting (a learner's launch, an admin saving a session): answer or fail within seconds.
INTERACTIVE = Budget(total=8.0, max_queue_wait=1.0, attempt_timeout=5.0, max_attempts=3, connect_timeout=3.0)
# A background job (attendance collection, reconciliation): patience, but still bounded.
BULK = Budget(total=120.0, max_queue_wait=60.0, attempt_timeout=30.0, max_attempts=8)

# The deadline of the request being made in this task: a nested request (e.g. the token fetch inside an API call)
# never outlives the call that caused it.
_deadline: ContextVar[float | None] = ContextVar("provider_call_deadline", default=None)


# ---------------------------------------------------------------------------------------------------------------
# Errors


class ProviderCallFailed(ProviderFailed):
    """Base of the errors `ProviderHttp` raises. `message` is written for an admin; the attributes are for code."""

    def __init__(self, provider: str, message: str, *, operation: str = "", retry_after_seconds: int | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, retry_after_seconds)
        self.operation = operation
        # The request may have reached the provider and taken effect although no answer came back.
        self.ambiguous = ambiguous
        self.explained = False  # a provider client has rewritten the message with its own knowledge

    def with_message(self, message: str, *, explained: bool = True) -> Self:
        """A copy with another message (a provider client's explanation of the provider's error)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.args = (message,)
        clone.message = message
        clone.explained = explained
        return clone


class ProviderApiError(ProviderCallFailed):
    """The provider answered with an error: its HTTP status, its own error code and message are kept."""

    def __init__(self, provider: str, message: str, *, http_status: int, code: int | str | None,
                 provider_message: str, body: Any = None, method: str = "", url: str = "", operation: str = "",
                 retry_after_seconds: int | None = None, rate_limit_type: str | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, operation=operation, retry_after_seconds=retry_after_seconds,
                         ambiguous=ambiguous)
        self.http_status = http_status
        self.code = code
        self.provider_message = provider_message
        self.body = body
        self.method = method
        self.url = url  # secrets in the query blanked
        self.rate_limit_type = rate_limit_type  # X-RateLimit-Type on a 429 (Zoom: "QPS" or "Daily-limit")

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """Quotas and server-side failures pass; any other 4xx is the provider refusing the request as it is."""
        return self.http_status in (408, 425, 429) or self.http_status >= 500

    @property
    def status(self) -> int:  # type: ignore[override]
        """What the LMS is answered. The provider refusing what was asked (a past start, a topic too long, a
        conflict) is for the person who saved to correct: a 400 with the provider's reason. Its refusing *us*
        (credentials, permissions, a missing resource) and its failures are ours: a 500."""
        return 400 if self.http_status in (400, 409, 422) else 500


class ProviderUnreachable(ProviderCallFailed):
    """No answer: the connection failed, dropped, or the provider did not answer in time."""

    def __init__(self, provider: str, message: str, *, reason: str, operation: str = "",
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, operation=operation, ambiguous=ambiguous)
        self.reason = reason


class RateLimitExceeded(ProviderCallFailed):
    """Our own rate limiter had no slot within the call's wait: nothing was sent to the provider."""

    sent = False

    def __init__(self, provider: str, message: str, *, quota: Quota, retry_after_seconds: int,
                 operation: str = "") -> None:
        super().__init__(provider, message, operation=operation, retry_after_seconds=retry_after_seconds)
        self.quota = quota


class CircuitOpen(ProviderCallFailed):
    """The account's circuit breaker is open after repeated outages: nothing was sent to the provider."""

    sent = False


class ProviderUrlRefused(ProviderCallFailed):
    """The SSRF guard (`url_guard`) refused the URL or the address it resolved to: nothing was sent, and waiting
    will not help; the connection's settings (or the server's allow-list) must change."""

    sent = False
    transient = False


# ---------------------------------------------------------------------------------------------------------------
# Client-side rate limits


@dataclass(frozen=True)
class Quota:
    """One named rate-limit bucket: at most `limit` calls per `seconds`.

    Sliding windows by default. `aligned` windows start at multiples of `seconds` since the Unix epoch, so an
    aligned 86400-second window is a UTC day, like Zoom's daily limits that reset at 00:00 UTC.
    """

    key: str  # e.g. "zoom:<account>:light:second"
    limit: int
    seconds: float
    aligned: bool = False
    label: str = ""  # for people: "Zoom's Light API limit (30 calls a second)"
    # At most this many at once (sliding windows only): the limit is also enforced over slices of the window,
    # so a burst reaches the provider spread out instead of in one lump that its own clock may count in one go.
    burst: int | None = None

    @property
    def rates(self) -> list[Rate]:
        window = max(1, round(self.seconds * 1000))
        rates = [Rate(self.limit, window)]
        if self.burst is not None and not self.aligned and 0 < self.burst < self.limit:
            # floor: the slice's density is never below the window's (pyrate-limiter's rule for rate lists)
            rates.insert(0, Rate(self.burst, max(1, window * self.burst // self.limit)))
        return rates

    def window_end(self, now: datetime) -> datetime:
        """When the aligned window containing `now` ends (the next UTC midnight for a daily window)."""
        span = self.seconds
        stamp = now.timestamp()
        return datetime.fromtimestamp(stamp - stamp % span + span, UTC)


class _WallClockMemoryBucket(InMemoryBucket):
    """Wall-clock timestamps, so aligned windows line up with UTC days (monotonic time has no calendar)."""

    _clock = WallClock()


BucketBackend = Callable[[Quota], AbstractBucket]


def memory_buckets(quota: Quota) -> AbstractBucket:
    """The default backend: buckets in this process's memory. A PostgreSQL or Redis backend (pyrate-limiter's
    `PostgresBucket`, `RedisBucket`) shares them between replicas; any `AbstractBucket` works, sync or async."""
    if quota.aligned:
        return _WallClockMemoryBucket(quota.rates, algorithm=FixedWindow())
    return InMemoryBucket(quota.rates)


async def _resolve(value: T | Awaitable[T]) -> T:
    """pyrate-limiter's bucket methods answer a value (memory buckets) or an awaitable (database buckets)."""
    while isawaitable(value):
        value = await value
    return value


class QuotaExhausted(Exception):
    def __init__(self, quota: Quota, wait: float) -> None:
        super().__init__(f"no slot in {quota.key} for {wait:.1f} s")
        self.quota = quota
        self.wait = wait


class RateLimits:
    """Named client-side rate-limit buckets, created on first use from the `Quota` a call names.

    pyrate-limiter's buckets are used directly (not through its `Limiter`, whose async lock would make every
    caller queue behind the slowest bucket): each slot is a `put` of one item; a refused put tells how long until
    a slot frees up, and the caller sleeps that long if its wait allows, or gives up at once.
    """

    def __init__(self, backend: BucketBackend = memory_buckets) -> None:
        self._backend = backend
        self._buckets: dict[str, tuple[Quota, AbstractBucket]] = {}
        self._local: dict[str, tuple[Quota, AbstractBucket]] = {}  # while a shared store is unreachable
        self._puts: dict[str, int] = {}
        self._lock = threading.Lock()

    def bucket(self, quota: Quota) -> AbstractBucket:
        with self._lock:
            entry = self._buckets.get(quota.key)
            if entry is None or entry[0] != quota:  # new, or its limit changed (e.g. a plan upgrade)
                if entry is not None:
                    entry[1].close()
                entry = (quota, self._backend(quota))
                self._buckets[quota.key] = entry
            return entry[1]

    async def acquire(self, quotas: Sequence[Quota], *, max_wait: float) -> None:
        """One slot from each bucket, in order, waiting at most `max_wait` seconds in all; `QuotaExhausted` when a
        slot would take longer (slots already taken from earlier buckets stay spent: counting high is safe)."""
        deadline = time.monotonic() + max(0.0, max_wait)
        for quota in quotas:
            try:
                await self._take(quota, self.bucket(quota), deadline)
            except QuotaExhausted:
                raise
            except Exception as exc:
                if self._backend is memory_buckets:
                    raise
                # The shared store (Redis, PostgreSQL) is unreachable: a learner's launch or an admin's save must
                # not fail for a counter. Count in this process meanwhile, as without a shared store, and rely on
                # the provider's 429s; the next call tries the shared store again.
                log.warning("rate-limit store unreachable (%s: %s); counting %s in this process until it is back",
                            exc.__class__.__name__, exc, quota.key)
                await self._take(quota, self._local_bucket(quota), deadline)

    async def _take(self, quota: Quota, bucket: AbstractBucket, deadline: float) -> None:
        while True:
            item = RateItem(quota.key, int(await _resolve(bucket.now())))  # type: ignore[no-untyped-call]
            decision = await _resolve(bucket.put_decision(item))
            if decision.allowed:
                await self._tidy(quota, bucket, item.timestamp)
                return
            wait_ms = decision.retry_after_ms
            if wait_ms is None:
                wait_ms = await _resolve(bucket.waiting(item))
            wait = max(0, wait_ms) / 1000 + 0.002
            if time.monotonic() + wait > deadline:
                raise QuotaExhausted(quota, wait)
            await asyncio.sleep(wait)

    def _local_bucket(self, quota: Quota) -> AbstractBucket:
        with self._lock:
            entry = self._local.get(quota.key)
            if entry is None or entry[0] != quota:
                entry = (quota, memory_buckets(quota))
                self._local[quota.key] = entry
            return entry[1]

    async def _tidy(self, quota: Quota, bucket: AbstractBucket, now: int) -> None:
        """Drop expired items now and then (pyrate-limiter's own leaker runs only under its `Limiter`)."""
        with self._lock:
            count = self._puts.get(quota.key, 0) + 1
            self._puts[quota.key] = count
        if count % (2 * quota.limit + 64) == 0:
            await _resolve(bucket.leak(now))

    def close(self) -> None:
        with self._lock:
            for _, bucket in self._buckets.values():
                bucket.close()
            self._buckets.clear()


def redis_buckets(url: str) -> BucketBackend:
    """Buckets in Redis, shared by every process that uses the same URL: N API replicas and M workers together
    stay within one provider account's limits. Keys are `viltbridge:rate:<quota key>`; a daily window is a fixed
    window aligned to UTC days, as in memory."""
    import redis
    from pyrate_limiter import RedisBucket

    client = redis.Redis.from_url(url)

    def make(quota: Quota) -> AbstractBucket:
        bucket: AbstractBucket = RedisBucket.init(quota.rates, client, f"viltbridge:rate:{quota.key}",
                                                  algorithm=FixedWindow() if quota.aligned else None)
        return bucket

    return make


_SHARED_LIMITS = RateLimits()


def shared_limits() -> RateLimits:
    """The process-wide buckets every provider client uses unless given others (tests give their own)."""
    return _SHARED_LIMITS


def share_limits_through(url: str | None) -> None:
    """At process start: keep this process's rate-limit buckets in Redis (`redis://…`), shared with the other
    processes of the deployment, instead of in memory (None)."""
    global _SHARED_LIMITS
    _SHARED_LIMITS.close()
    _SHARED_LIMITS = RateLimits(redis_buckets(url)) if url else RateLimits()


# ---------------------------------------------------------------------------------------------------------------
# Circuit breakers


def _not_an_outage(exc: BaseException) -> bool:
    """pybreaker counts what this returns False for: no answer, or server errors that retries did not cure.
    A refusal (4xx), a rate limit or a cancelled call says nothing about the provider being down."""
    if isinstance(exc, ProviderUnreachable):
        return False
    return not (isinstance(exc, ProviderApiError) and exc.http_status >= 500)


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        level = logging.WARNING if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        log.log(level, "circuit breaker %s: %s -> %s", cb.name, old_state.name if old_state else "-", new_state.name)


def new_breaker(name: str, *, fail_max: int = 5, reset_timeout: float = 30.0) -> pybreaker.CircuitBreaker:
    # throw_new_error_on_trip=False: the call that trips the breaker still gets its own, more telling error.
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout, exclude=[_not_an_outage],
                                    listeners=[_BreakerLog()], name=name, throw_new_error_on_trip=False)


def _breaker_closes_in(breaker: pybreaker.CircuitBreaker) -> float:
    """Seconds until an open breaker lets a trial call through (its full timeout if it cannot say)."""
    opened_at = breaker._state_storage.opened_at  # pybreaker offers no public accessor
    if opened_at is None:
        return float(breaker.reset_timeout)
    passed = (datetime.now(UTC) - opened_at).total_seconds()
    return max(0.0, breaker.reset_timeout - passed)


_BREAKERS: dict[tuple[str, str], pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def account_breaker(provider: str, account: str, *, fail_max: int = 5,
                    reset_timeout: float = 30.0) -> pybreaker.CircuitBreaker:
    """The process-wide breaker of one provider account."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get((provider, account))
        if breaker is None:
            breaker = new_breaker(f"{provider}:{account}", fail_max=fail_max, reset_timeout=reset_timeout)
            _BREAKERS[(provider, account)] = breaker
        return breaker


# ---------------------------------------------------------------------------------------------------------------
# Auth


class Auth(Protocol):
    """How a provider's requests are authenticated (e.g. a cached OAuth bearer token)."""

    async def headers(self) -> Mapping[str, str]:
        """Headers for the next request; cheap (cached) when nothing needs refreshing."""
        ...

    async def refreshed(self, rejected: Mapping[str, str]) -> Mapping[str, str]:
        """New headers after the provider answered 401 to `rejected`. Concurrent callers share one refresh: when
        someone already replaced the rejected credentials, the current ones come back without a new fetch."""
        ...


class CachedBearerToken:
    """The `Auth` of a provider whose tokens come from a token endpoint: a token is cached until shortly before it
    expires, fetched by one caller at a time (the others wait and reuse it), and fetched again once when the provider
    rejects it. Subclasses say how to fetch one (`fetch`: the token and its lifetime in seconds)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, refresh_margin: float = 300.0,
                 token: str | None = None, on_settings_change: SettingsSink | None = None) -> None:
        self._clock = clock
        self.on_settings_change = on_settings_change
        self._refresh_margin = refresh_margin
        self._token = token
        # A token given up front has an unknown lifetime: it is used until the provider refuses it.
        self._refresh_at = float("inf") if token else 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.fetches = 0  # token requests made
        self._renewed_at: datetime | None = None
        self._renew_failure: tuple[datetime, str] | None = None

    async def fetch(self) -> tuple[str, float]:
        raise NotImplementedError

    async def keep_setting(self, provider: str, key: str, value: str) -> None:
        """A setting the provider changed in its token answer (a new refresh token, already in use in memory):
        handed to `on_settings_change` to be stored with the connection. Storing it failing does not fail the
        call: the value in memory works until a restart, and the log says so."""
        if self.on_settings_change is None:
            log.warning("%s: the provider issued a new %s; it is kept in memory only, so after a restart viltbridge "
                        "uses the configured one again", provider, key)
            return
        try:
            await self.on_settings_change({key: value})
        except Exception:
            log.exception("%s: storing the provider's new %s failed; it is kept in memory for now", provider, key)

    async def newer_stored(self, key: str, refused: str, *, settle_seconds: float = 1.0) -> str | None:
        """The value of `key` stored with the connection when it is not the one the provider just refused, else
        None. A provider that rotates refresh tokens revokes the old one when it issues the new, so whichever
        adapter of the connection renews first (this server's, the job worker's, another process's) leaves the
        others holding a dead token; the winner stores the new one. It may still be writing it: one more look after
        `settle_seconds`."""
        if self.on_settings_change is None:
            return None
        for wait in (0.0, settle_seconds):
            await asyncio.sleep(wait)
            try:
                stored = await self.on_settings_change.stored(key)
            except Exception:
                log.exception("reading the stored %s failed", key)
                return None
            if stored and stored != refused:
                return stored
        return None

    async def renew_with_refresh_token(self, provider: str, refresh_token: str,
                                       renew: Callable[[str], Awaitable[httpx2.Response]],
                                       explain: Callable[[ProviderApiError], str]) -> tuple[httpx2.Response, str]:
        """The token endpoint's answer to `renew(refresh_token)` and the refresh token that got it: the given one,
        or the connection's stored one when the provider refused the given one and another adapter stored a newer
        (`newer_stored`). A refusal raises ProviderFailed with `explain`'s words."""
        try:
            return await renew(refresh_token), refresh_token
        except ProviderApiError as err:
            newer = await self.newer_stored("refresh_token", refresh_token) if err.http_status in (400, 401) else None
            if newer is None:
                raise err.with_message(explain(err)) from None
        log.info("%s: the refresh token was replaced by another server or worker; renewing with the stored one",
                 provider)
        try:
            return await renew(newer), newer
        except ProviderApiError as err:
            raise err.with_message(explain(err)) from None

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    def _get_lock(self) -> asyncio.Lock:
        # A lock belongs to one event loop; tests and the CLI may use a client from several in turn.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def health_item(self) -> HealthItem:
        if self._renew_failure is not None and (self._renewed_at is None
                                                or self._renew_failure[0] > self._renewed_at):
            return HealthItem("token", False, f"renewal failed at {self._renew_failure[0]:%Y-%m-%d %H:%M:%S} UTC: "
                                              f"{self._renew_failure[1]}")
        if self._renewed_at is not None:
            return HealthItem("token", True, f"renewed at {self._renewed_at:%Y-%m-%d %H:%M:%S} UTC "
                                             f"({self.fetches} renewal(s) since this server started)")
        if self._token is not None:
            return HealthItem("token", None, "the configured token, not yet refused")
        return HealthItem("token", None, "not fetched yet: the first call fetches it")

    async def _renew(self) -> None:
        self.fetches += 1
        try:
            token, lifetime = await self.fetch()
        except ProviderFailed as failed:
            self._renew_failure = (datetime.now(UTC), failed.message)
            raise
        self._renewed_at = datetime.now(UTC)
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(self._refresh_margin, lifetime / 10)

    async def headers(self) -> Mapping[str, str]:
        if not self._fresh():
            async with self._get_lock():
                if not self._fresh():  # someone else may have fetched one while we waited
                    await self._renew()
        return self._headers()

    async def refreshed(self, rejected: Mapping[str, str]) -> Mapping[str, str]:
        async with self._get_lock():
            if not self._fresh() or rejected.get("Authorization") == self._headers()["Authorization"]:
                await self._renew()
        return self._headers()

    def invalidate(self) -> None:
        self._token = None


def token_answer(provider: str, response: httpx2.Response, endpoint: str, setting: str,
                 default_lifetime: float = 3600.0) -> tuple[str, float, dict[str, Any]]:
    """The access token, its lifetime and the whole body of an OAuth token endpoint's answer, or ProviderFailed
    naming the setting to check."""
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(token, str) or not token:
        raise ProviderFailed(provider, f"The token endpoint ({endpoint}) answered without an access token; check the "
                                       f"{setting} setting.")
    try:  # seconds, as a number or (Entra ID) as text
        lifetime = float(body.get("expires_in"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lifetime = default_lifetime
    return token, lifetime if lifetime > 0 else default_lifetime, body


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds (fractions tolerated), an HTTP date, or an ISO-8601
    time (Zoom's daily-limit 429s say e.g. `2026-03-03T00:00:00Z`). None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


def _wait_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _error_details(response: httpx2.Response) -> tuple[int | str | None, str, Any]:
    """(code, message, body) from the usual error bodies: Zoom `{"code","message","errors"}`, OAuth
    `{"error","reason"|"error_description"}`, Graph `{"error": {"code","message"}}`."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code: int | str | None = None
    message = ""
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict):
            code, message = nested.get("code"), str(nested.get("message") or "")
        else:
            raw_code = body.get("code", nested)
            code = raw_code if isinstance(raw_code, int | str) else None
            message = str(body.get("message") or body.get("reason") or body.get("error_description") or "")
        problems = body.get("errors")
        if isinstance(problems, list):
            details = "; ".join(f"{p.get('field', '?')}: {p.get('message', '')}".strip()
                                for p in problems[:10] if isinstance(p, dict))
            if details:
                message = f"{message} ({details})" if message else details
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    return code, message[:1000], body


class _Lazy:
    """Formats only when a log line is actually written (the handler's filter drops most DEBUG records)."""

    def __init__(self, render: Callable[[], object]) -> None:
        self._render = render

    def __str__(self) -> str:
        return str(self._render())


def _body_for_log(content: bytes, content_type: str) -> Any:
    return redacted_body(content, content_type)


_LOGGED_RESPONSE_HEADERS = ("retry-after", "x-ratelimit-category", "x-ratelimit-type", "x-ratelimit-limit",
                            "x-ratelimit-remaining")


class _Transient(Exception):
    """A failed attempt that another attempt may cure."""

    def __init__(self, error: ProviderCallFailed, *, ambiguous: bool, wait: float | None = None,
                 final: bool = False, rate_limited: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.rate_limited = rate_limited  # a 429: the provider did no work and (usually) said when to return
        self.ambiguous = ambiguous  # the request may have reached the provider
        self.wait = wait  # what the provider asked for (Retry-After / X-RateLimit-*), else exponential backoff
        self.final = final  # retrying within any budget is pointless (a daily limit)


@dataclass
class _Call:
    method: str
    url: str
    operation: str
    params: Mapping[str, Any] | None
    json: Any
    data: Mapping[str, Any] | None
    headers: Mapping[str, str]
    quotas: Sequence[Quota]
    budget: Budget
    safe: bool  # may be repeated even if it might have taken effect
    authenticate: bool
    deadline: float
    started: float


# ---------------------------------------------------------------------------------------------------------------
# The client


class ProviderHttp:
    """HTTP to one provider account: auth, rate limits, retries, circuit breaker, debug logs, readable errors."""

    def __init__(
        self,
        provider: str,
        *,
        account: str,
        base_url: str = "",
        display_name: str | None = None,
        auth: Auth | None = None,
        limits: RateLimits | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        wait_initial: float = 0.1,
        wait_max: float = 5.0,
        wait_jitter: float = 0.1,
    ) -> None:
        self.provider = provider
        self.account = account
        self.name = display_name or provider.capitalize()
        self.auth = auth  # settable after construction: a token provider usually needs this client itself
        self.limits = limits if limits is not None else shared_limits()
        self.breaker = breaker if breaker is not None else account_breaker(provider, account)
        self.wait_initial, self.wait_max, self.wait_jitter = wait_initial, wait_max, wait_jitter
        self._client = httpx2.AsyncClient(
            base_url=base_url, transport=transport or guarded_transport(), follow_redirects=False, trust_env=False,
            headers={"User-Agent": "viltbridge", "Accept": "application/json", **(headers or {})},
        )
        # What this client has seen, for `health()`: the console's provider health.
        self._last_ok_at: datetime | None = None
        self._last_failure: tuple[datetime, str, str] | None = None  # when, operation, message
        self._calls_today: dict[str, int] = {}  # quota label -> calls today (UTC), this process
        self._today = datetime.now(UTC).date()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _record(self, call_quotas: Sequence[Quota], failure: ProviderCallFailed | None, operation: str) -> None:
        now = datetime.now(UTC)
        if now.date() != self._today:
            self._today, self._calls_today = now.date(), {}
        if failure is None:
            self._last_ok_at = now
        elif failure.sent:
            self._last_failure = (now, operation, failure.message)
        if failure is None or failure.sent:
            for quota in call_quotas:
                label = quota.label or quota.key
                self._calls_today[label] = self._calls_today.get(label, 0) + 1

    def health(self) -> list[HealthItem]:
        """What this client has seen of the account: token, last call, circuit breaker, calls per quota today."""
        items: list[HealthItem] = []
        if isinstance(self.auth, CachedBearerToken):
            items.append(self.auth.health_item())
        failure = self._last_failure
        if failure is not None and (self._last_ok_at is None or failure[0] > self._last_ok_at):
            items.append(HealthItem("last call", False, f"failed at {failure[0]:%Y-%m-%d %H:%M:%S} UTC trying to "
                                                        f"{failure[1]}: {failure[2]}"))
        elif self._last_ok_at is not None:
            items.append(HealthItem("last call", True, f"succeeded at {self._last_ok_at:%Y-%m-%d %H:%M:%S} UTC"))
        else:
            items.append(HealthItem("last call", None, "no call made since this server started"))
        state = self.breaker.current_state
        items.append(HealthItem("circuit breaker", state != pybreaker.STATE_OPEN,
                                f"{state}: calls pause after {self.breaker.fail_max} outages in a row"))
        for label, count in sorted(self._calls_today.items()):
            items.append(HealthItem("calls today", None, f"{count} against {label} (this server process, UTC day)"))
        return items

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        quotas: Sequence[Quota] = (),
        budget: Budget = INTERACTIVE,
        idempotent: bool | None = None,
        authenticate: bool = True,
        use_breaker: bool = True,
    ) -> httpx2.Response:
        """Send one logical request and return its 2xx response, or raise a `ProviderCallFailed`.

        `operation` says what the call does, for messages ("create the meeting"). `quotas` name the rate-limit
        buckets it spends a slot of (per attempt). `idempotent` overrides the method's idempotency: True makes a
        POST that is safe to repeat retryable after ambiguous failures; False keeps a PUT from being repeated.
        `use_breaker=False` for calls made inside another call (a token fetch), which counts for both.
        """
        method = method.upper()
        now = time.monotonic()
        deadline = now + budget.total
        outer = _deadline.get()
        if outer is not None:
            deadline = min(deadline, outer)
        call = _Call(method=method, url=url, operation=operation, params=params, json=json, data=data,
                     headers=dict(headers or {}), quotas=tuple(quotas), budget=budget,
                     safe=idempotent if idempotent is not None else method in IDEMPOTENT_METHODS,
                     authenticate=authenticate and self.auth is not None, deadline=deadline, started=now)
        token = _deadline.set(deadline)
        try:
            if not use_breaker:
                response = await self._with_retries(call)
                self._record(call.quotas, None, operation)
                return response
            try:
                with self.breaker.calling():
                    response = await self._with_retries(call)
                    self._record(call.quotas, None, operation)
                    return response
            except ProviderCallFailed as failed:
                self._record(call.quotas, failed, operation)
                raise
            except pybreaker.CircuitBreakerError:
                closed_in = _breaker_closes_in(self.breaker)
                raise CircuitOpen(
                    self.provider,
                    f"{self.name} failed {self.breaker.fail_max} times in a row for this account (no answer or "
                    f"server errors), so viltbridge is pausing calls to it for "
                    f"{_wait_words(closed_in)} and did not try to {operation}. Try again shortly; "
                    f"if this persists, check {self.name}'s status page and this server's network access to it.",
                    operation=operation, retry_after_seconds=max(1, math.ceil(closed_in)),
                ) from None
        finally:
            _deadline.reset(token)

    # -- retries --------------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.wait_max, self.wait_initial * 2 ** (attempt - 1) + random.uniform(0, self.wait_jitter)))  # noqa: S311

    async def _with_retries(self, call: _Call) -> httpx2.Response:
        attempts = failures = 0

        def should_retry(exc: Exception) -> bool | float:
            """stamina's backoff hook: False gives up, a number is the wait before the next attempt.

            429s that say when to come back are bounded by the time budget only; other failures also by
            `max_attempts`."""
            nonlocal failures
            if not isinstance(exc, _Transient) or exc.final:
                return False
            if exc.ambiguous and not call.safe:
                return False
            if not exc.rate_limited:
                failures += 1
                if failures >= call.budget.max_attempts:
                    return False
            wait = max(0.05, exc.wait) if exc.wait is not None else self._backoff(failures or attempts)
            if time.monotonic() + wait + 0.05 >= call.deadline:
                return False  # the provider asks for longer than the budget has left: fail now, not later
            return wait

        try:
            async for attempt in stamina.retry_context(on=should_retry, attempts=None, timeout=call.budget.total):
                with attempt:
                    attempts += 1
                    return await self._attempt(call)
        except _Transient as exc:
            raise self._give_up(call, exc, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_up(self, call: _Call, exc: _Transient, attempts: int) -> ProviderCallFailed:
        extra = ""
        if exc.ambiguous and not call.safe:
            extra += (f" The request may still have reached {self.name}: check whether it took effect before "
                      "repeating it.")
        if attempts > 1:
            extra += f" (viltbridge tried {attempts} times over {time.monotonic() - call.started:.1f} s.)"
        error = exc.error.with_message(exc.error.message + extra, explained=False) if extra else exc.error
        error.ambiguous = exc.ambiguous and not call.safe
        return error

    # -- one attempt ----------------------------------------------------------------------------------------

    async def _attempt(self, call: _Call) -> httpx2.Response:
        headers = dict(call.headers)
        auth_headers: Mapping[str, str] = {}
        await self._take_slots(call)
        if call.authenticate and self.auth is not None:
            auth_headers = await self.auth.headers()
        response = await self._send(call, {**headers, **auth_headers})
        if response.status_code == 401 and call.authenticate and self.auth is not None:
            auth_headers = await self.auth.refreshed(auth_headers)
            await self._take_slots(call)
            response = await self._send(call, {**headers, **auth_headers})
        return self._check(call, response)

    async def _take_slots(self, call: _Call) -> None:
        if not call.quotas:
            return
        remaining = call.deadline - time.monotonic()
        try:
            await self.limits.acquire(call.quotas, max_wait=min(call.budget.max_queue_wait, remaining))
        except QuotaExhausted as exc:
            raise self._rate_limit_exceeded(call, exc) from None

    def _rate_limit_exceeded(self, call: _Call, exc: QuotaExhausted) -> RateLimitExceeded:
        quota = exc.quota
        label = quota.label or f"the rate limit {quota.key} ({quota.limit} calls per {quota.seconds:g} s)"
        if quota.aligned and quota.seconds >= 3600:
            reset = quota.window_end(datetime.now(UTC))
            message = (f"{label} is used up until {reset:%H:%M} UTC, so viltbridge did not {call.operation}. "
                       f"Try again after that.")
        else:
            message = (f"viltbridge did not {call.operation}: {label} is reached and no slot frees up within the "
                       f"{call.budget.max_queue_wait:g} s this call may wait. Try again in "
                       f"{_wait_words(exc.wait)}.")
        return RateLimitExceeded(self.provider, message, quota=quota, retry_after_seconds=math.ceil(exc.wait),
                                 operation=call.operation)

    def _timeout(self, call: _Call) -> httpx2.Timeout:
        remaining = call.deadline - time.monotonic()
        if remaining <= 0.01:
            raise _Transient(ProviderUnreachable(
                self.provider, f"{self.name} did not answer in time while viltbridge tried to {call.operation} "
                f"(the call's time budget of {call.budget.total:g} s is used up).",
                reason="budget", operation=call.operation), ambiguous=False, final=True)
        read = min(call.budget.attempt_timeout, remaining)
        return httpx2.Timeout(read, connect=min(call.budget.connect_timeout, read))

    async def _send(self, call: _Call, headers: Mapping[str, str]) -> httpx2.Response:
        request = self._client.build_request(
            call.method, call.url, params=call.params, json=call.json, data=call.data, headers=headers,
            timeout=self._timeout(call))
        problem = current_policy().scheme_problem(request.url.scheme, request.url.host)
        started = time.perf_counter()
        try:
            if problem is not None:
                raise AddressRefused(f"{request.url.scheme}://{request.url.host}: {problem}")
            response = await self._client.send(request)
        except AddressRefused as refused:
            raise ProviderUrlRefused(
                self.provider, f"viltbridge did not call {self.name} to {call.operation}: {refused} Correct the "
                "connection's provider settings.", operation=call.operation) from None
        except httpx2.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            self._log(request, None, elapsed, type(exc).__name__)
            raise self._transport_failure(call, request, exc) from None
        elapsed = (time.perf_counter() - started) * 1000
        self._log(request, response, elapsed, None)
        return response

    def _transport_failure(self, call: _Call, request: httpx2.Request, exc: httpx2.HTTPError) -> _Transient:
        host = request.url.host
        # Never sent: the provider cannot have acted on it, so repeating is safe whatever the method.
        not_sent = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
        if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
            reason = "connect"
            message = (f"viltbridge could not connect to {self.name} ({host}) to {call.operation} "
                       f"({type(exc).__name__}). Check this server's network access to {host} and "
                       f"{self.name}'s status page.")
        elif isinstance(exc, httpx2.TimeoutException):
            reason = "timeout"
            message = (f"{self.name} did not answer in time while viltbridge tried to {call.operation} "
                       f"({type(exc).__name__}). {self.name} may be slow or down; try again in a few minutes.")
        else:
            reason = "connection"
            message = (f"The connection to {self.name} ({host}) broke while viltbridge tried to {call.operation} "
                       f"({type(exc).__name__}). Try again in a few minutes.")
        error = ProviderUnreachable(self.provider, message, reason=reason, operation=call.operation)
        return _Transient(error, ambiguous=not not_sent)

    def _check(self, call: _Call, response: httpx2.Response) -> httpx2.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        code, provider_message, body = _error_details(response)
        url = redact(str(response.request.url))
        common: dict[str, Any] = {"http_status": status, "code": code, "provider_message": provider_message,
                                  "body": body, "method": call.method, "url": url, "operation": call.operation}
        if status == 429:
            limit_type = response.headers.get("x-ratelimit-type")
            daily = (limit_type or "").lower().startswith("daily")
            wait = parse_retry_after(response.headers.get("retry-after"))
            if daily and not wait:
                wait = _seconds_to_utc_midnight()
            elif wait is None and (limit_type or "").lower() == "qps":
                wait = 1.0 - time.time() % 1.0 + 0.05  # the provider counts per second: wait for the next one
            retry = math.ceil(wait) if wait is not None else None
            when = f" Try again in {_wait_words(wait)}." if wait is not None else " Try again in a minute."
            error = ProviderApiError(
                self.provider, f"{self.name} is limiting this account's API calls and viltbridge could not "
                f"{call.operation} in time: {provider_message}{when}",
                retry_after_seconds=retry, rate_limit_type=limit_type, **common)
            raise _Transient(error, ambiguous=False, wait=wait, final=daily, rate_limited=wait is not None)
        if status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"))
            error = ProviderApiError(
                self.provider, f"{self.name} had a server error (HTTP {status}: {provider_message}) while viltbridge "
                f"tried to {call.operation}. The problem is on {self.name}'s side; try again in a few minutes.",
                retry_after_seconds=math.ceil(wait) if wait is not None else None, **common)
            raise _Transient(error, ambiguous=True, wait=wait)
        code_text = f", code {code}" if code is not None and str(code) != str(status) else ""
        raise ProviderApiError(
            self.provider, f"{self.name} refused to {call.operation}: {provider_message} (HTTP {status}{code_text}).",
            **common)

    # -- logging --------------------------------------------------------------------------------------------

    def _log(self, request: httpx2.Request, response: httpx2.Response | None, elapsed_ms: float,
             failure: str | None) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        request_body = _Lazy(lambda: _body_for_log(request.content, request.headers.get("content-type", "")))
        if response is None:
            log.debug("%s %s %s -> %s after %d ms; request body=%s", self.provider, request.method,
                      _Lazy(lambda: redact(str(request.url))), failure, elapsed_ms, request_body)
            return
        limits = {name: response.headers[name] for name in _LOGGED_RESPONSE_HEADERS if name in response.headers}
        log.debug("%s %s %s -> %s in %d ms; request body=%s; response body=%s%s", self.provider, request.method,
                  _Lazy(lambda: redact(str(request.url))), response.status_code, elapsed_ms, request_body,
                  _Lazy(lambda: _body_for_log(response.content, response.headers.get("content-type", ""))),
                  f"; {limits}" if limits else "")
