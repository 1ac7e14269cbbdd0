"""A short-lived cache of database reads for the launch path, loaded single-flight.

Cornerstone calls the launch endpoint on every click, and a class of hundreds clicks in the same minute: the same
connection and the same session are read again and again. An entry lives `lifetime` seconds. While it is being
loaded, other requests for the same key wait for that one load instead of each reading the database (when an
entry expires under load, one request reads again, not all of them at once). `forget` drops entries at once: this
process calls it after every commit that changed a cached row (`store.changes`), so a change made here takes
effect here immediately; other processes see it within `lifetime`.

A load that was running when its key was forgotten still answers the requests waiting for it, but is not kept:
what it read may predate the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class ReadCache(Generic[K, V]):
    def __init__(self, lifetime: float, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}  # forgetting a key takes its load out: not kept then
        self.loads = 0  # how many times a loader ran (tests and benchmarks read it)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, or what `load()` returns (kept for `lifetime`). A failing load is not
        kept: its exception reaches every request that waited for it."""
        while True:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > self._clock():
                return entry.value
            running = self._loading.get(key)
            if running is None:
                return await self._load(key, load)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not running.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The request that was loading went away (its client disconnected): load again.

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        flight: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = flight
        self.loads += 1
        try:
            value = await load()
        except Exception as exc:
            self._landed(key, flight)
            flight.set_exception(exc)
            flight.exception()  # retrieved here: nobody else may be waiting
            raise
        except BaseException:
            self._landed(key, flight)
            flight.cancel()
            raise
        if self._landed(key, flight):
            self._keep(key, value)
        flight.set_result(value)
        return value

    def _landed(self, key: K, flight: asyncio.Future[V]) -> bool:
        """Whether `flight` is still the key's load (not forgotten meanwhile); it no longer is after this."""
        if self._loading.get(key) is not flight:
            return False
        del self._loading[key]
        return True

    def _keep(self, key: K, value: V) -> None:
        self._entries.pop(key, None)  # re-inserted last: the oldest entries are first in the dict
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(value, self._clock() + self.lifetime)

    def forget(self, keys: Iterable[K]) -> None:
        """Drop these keys now; a load of one of them already running is not kept, and the next request for it
        loads afresh instead of waiting for a read that may predate the change."""
        for key in keys:
            self._entries.pop(key, None)
            self._loading.pop(key, None)

    def clear(self) -> None:
        """Drop every entry; loads already running are not kept."""
        self._entries.clear()
        self._loading.clear()
