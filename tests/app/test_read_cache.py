"""The launch path's read cache: one load per key however many ask at once, entries kept for their lifetime,
forgotten at once on a change (a load running meanwhile is not kept), failures not kept."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.app.read_cache import ReadCache

pytestmark = pytest.mark.pure


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A database stand-in: counts reads, and holds each read until released when asked to."""

    def __init__(self) -> None:
        self.value = "v1"
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def read(self) -> str:
        self.reads += 1
        seen = self.value
        if self.gate is not None:
            await self.gate.wait()
        return seen


async def test_many_requests_for_an_expired_key_load_it_once() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    source = Source()
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.get("acme", source.read)) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 50
    assert source.reads == 1 == cache.loads


async def test_an_entry_lives_for_its_lifetime_then_is_read_again() -> None:
    clock = Clock()
    cache: ReadCache[str, str] = ReadCache(5, clock=clock)
    source = Source()
    assert await cache.get("acme", source.read) == "v1"
    source.value = "v2"
    clock.now = 4.9
    assert await cache.get("acme", source.read) == "v1"
    clock.now = 5.0
    assert await cache.get("acme", source.read) == "v2"
    assert source.reads == 2


async def test_a_forgotten_key_is_read_again_at_once() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    source = Source()
    await cache.get("acme", source.read)
    source.value = "v2"
    cache.forget(["acme"])
    assert await cache.get("acme", source.read) == "v2"


async def test_a_load_running_when_its_key_is_forgotten_is_not_kept() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    source = Source()
    source.gate = asyncio.Event()
    stale = asyncio.create_task(cache.get("acme", source.read))
    await asyncio.sleep(0)
    source.value = "v2"  # the change commits while the read above is on its way
    cache.forget(["acme"])
    fresh = asyncio.create_task(cache.get("acme", source.read))  # does not wait for the stale read
    await asyncio.sleep(0)
    source.gate.set()
    assert (await stale, await fresh) == ("v1", "v2")
    source.gate = None
    assert await cache.get("acme", source.read) == "v2" and source.reads == 2


async def test_clear_drops_everything_and_running_loads() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    source = Source()
    await cache.get("a", source.read)
    source.gate = asyncio.Event()
    running = asyncio.create_task(cache.get("b", source.read))
    await asyncio.sleep(0)
    cache.clear()
    source.gate.set()
    await running
    source.gate = None
    await cache.get("a", source.read)
    await cache.get("b", source.read)
    assert source.reads == 4


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    gate = asyncio.Event()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise ConnectionError("database went away")

    waiting = [asyncio.create_task(cache.get("acme", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results) and calls == 1
    with pytest.raises(ConnectionError):
        await cache.get("acme", failing)
    assert calls == 2


async def test_waiters_load_again_when_the_loading_request_is_cancelled() -> None:
    cache: ReadCache[str, str] = ReadCache(5, clock=Clock())
    source = Source()
    source.gate = asyncio.Event()
    leader = asyncio.create_task(cache.get("acme", source.read))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.get("acme", source.read))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    source.gate.set()
    assert await follower == "v1"
    assert leader.cancelled() and source.reads == 2


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.integers(0, 300), min_size=1, max_size=100, unique=True), limit=st.integers(1, 10))
def test_the_last_max_entries_keys_loaded_stay_and_older_ones_go(keys: list[int], limit: int) -> None:
    async def check() -> None:
        cache: ReadCache[int, int] = ReadCache(5, max_entries=limit, clock=Clock())

        async def load(key: int) -> int:
            return key

        for key in keys:
            assert await cache.get(key, lambda key=key: load(key)) == key  # type: ignore[misc]
        newest = keys[::-1]
        loads = cache.loads
        for key in newest[:limit]:
            await cache.get(key, lambda key=key: load(key))  # type: ignore[misc]
        assert cache.loads == loads  # all still cached
        if len(newest) > limit:
            await cache.get(newest[limit], lambda: load(newest[limit]))
            assert cache.loads == loads + 1  # gone: read again

    asyncio.run(check())
