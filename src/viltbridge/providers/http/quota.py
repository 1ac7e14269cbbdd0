"""Client-side rate limits: named `Quota` buckets kept by pyrate-limiter in `RateLimits`, in memory or in Redis, and
the process-wide set every provider client shares unless given its own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from inspect import isawaitable
from typing import TypeVar

from pyrate_limiter import AbstractBucket, FixedWindow, InMemoryBucket, Rate, RateItem, WallClock

from viltbridge.providers.http.logs import log

T = TypeVar("T")


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
    # At most this many at once: the limit is also enforced over slices of the window (of its open part, for an
    # aligned window with a guard), so a burst reaches the provider spread out instead of in one lump.
    burst: int | None = None
    # Aligned windows only: no slot in the last `guard` seconds of a window, so a call that takes up to that long
    # to reach the provider (the network, the offset between the two clocks) is still counted by the provider in
    # the window that let it through. A provider counting per calendar second gets its whole limit every second,
    # where a sliding window would have to be longer than a second (and so slower) to absorb the same delays.
    guard: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.guard < self.seconds:
            raise ValueError(f"{self.key}: the guard ({self.guard:g} s) must leave part of the {self.seconds:g} s "
                             "window open")

    @property
    def rates(self) -> list[Rate]:
        window = self._window_ms
        rates = [Rate(self.limit, window)]
        if self.burst is not None and 0 < self.burst < self.limit and (not self.aligned or self.guard > 0):
            spread_over = window - self._guard_ms
            # floor: the slice's density is never below the window's (pyrate-limiter's rule for rate lists)
            rates.insert(0, Rate(self.burst, max(1, spread_over * self.burst // self.limit)))
        return rates

    @property
    def _window_ms(self) -> int:
        return max(1, round(self.seconds * 1000))

    @property
    def _guard_ms(self) -> int:
        return round(self.guard * 1000) if self.aligned else 0

    def closed_for_ms(self, now_ms: int) -> int:
        """How long until the window reopens when `now_ms` (epoch milliseconds) falls in its guard; else 0."""
        guard = self._guard_ms
        if not guard:
            return 0
        window = self._window_ms
        into = now_ms % window
        return window - into if into >= window - guard else 0

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
            now = int(await _resolve(bucket.now()))  # type: ignore[no-untyped-call]
            wait_ms = quota.closed_for_ms(now)
            if not wait_ms:
                item = RateItem(quota.key, now)
                decision = await _resolve(bucket.put_decision(item))
                if decision.allowed:
                    await self._tidy(quota, bucket, item.timestamp)
                    return
                retry_after_ms = decision.retry_after_ms
                if retry_after_ms is None:
                    retry_after_ms = await _resolve(bucket.waiting(item))
                wait_ms = retry_after_ms
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
