"""One adapter per connection, kept between requests and jobs; settings a provider changes itself (a rotated
refresh token) written back through a function the application passes in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError

from viltbridge.core.models import Connection
from viltbridge.core.provider import Provider, SettingsSink
from viltbridge.providers.registry import build_provider

log = logging.getLogger("viltbridge.providers")


WRITE_ATTEMPTS = 6  # about 30 s of retries: longer than any request holds SQLite's write lock

# Stores settings a provider changed for a connection (id, name, the changed keys and values).
SettingsWriter = Callable[[Connection, Mapping[str, str]], Awaitable[None]]
# Reads a connection's settings as stored now (None: the connection is gone).
SettingsReader = Callable[[Connection], Awaitable[Mapping[str, Any] | None]]


def _fingerprint(provider: str, settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps([provider, dict(settings)], sort_keys=True).encode()).hexdigest()


@dataclass
class _PooledAdapter:
    adapter: Provider
    # Every version of the connection's settings this adapter stands for: the ones it was built with and each its
    # provider changed since (a rotated refresh token). A request that read the connection before such a change was
    # stored still gets this adapter, which holds the new token, not a new one with the revoked token.
    fingerprints: set[str]


@dataclass
class ProviderPool:
    """One adapter per connection and settings version, so clients keep their tokens and rate-limit state."""

    # Where settings the provider itself changes (a rotated refresh token) are stored; None keeps them in memory.
    write_settings: SettingsWriter | None = None
    read_settings: SettingsReader | None = None
    _adapters: dict[int, _PooledAdapter] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def for_connection(self, connection: Connection) -> Provider:
        fingerprint = _fingerprint(connection.provider, connection.provider_settings)
        pooled = self._adapters.get(connection.id)
        if pooled is not None and fingerprint in pooled.fingerprints:
            return pooled.adapter
        if pooled is not None:
            self._retire(pooled.adapter)  # settings changed: the old adapter's clients go
        adapter = build_provider(connection.provider, connection.provider_settings, self._sink_for(connection))
        self._adapters[connection.id] = _PooledAdapter(adapter, {fingerprint})
        return adapter

    def adapters(self) -> list[Provider]:
        """The adapters in use, one per connection."""
        return [pooled.adapter for pooled in self._adapters.values()]

    def _sink_for(self, connection: Connection) -> SettingsSink | None:
        if self.write_settings is None:
            return None
        return _ConnectionSettings(self, connection)

    async def _write_with_retries(self, connection: Connection, changes: Mapping[str, str]) -> bool:
        assert self.write_settings is not None
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self.write_settings(connection, changes)
                return True
            except OperationalError:  # SQLite busy: the request that renewed the token holds the write lock
                if attempt < WRITE_ATTEMPTS - 1:
                    await asyncio.sleep(0.5 * 2 ** attempt)
        log.error("storing %s's new settings for connection %s failed; they are kept in memory until a restart",
                  connection.provider, connection.name)
        return False

    def _written(self, connection: Connection, settings: Mapping[str, Any]) -> None:
        """The adapter that reported a change already uses it: it now stands for the new settings too, so the next
        request (which reads them) keeps it and its token cache."""
        pooled = self._adapters.get(connection.id)
        if pooled is not None:
            pooled.fingerprints.add(_fingerprint(connection.provider, settings))

    def _retire(self, adapter: Provider) -> None:
        task = asyncio.get_running_loop().create_task(adapter.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every adapter (at shutdown)."""
        adapters, self._adapters = [pooled.adapter for pooled in self._adapters.values()], {}
        await asyncio.gather(*(adapter.aclose() for adapter in adapters), *self._closing, return_exceptions=True)


class _ConnectionSettings:
    """A connection's `SettingsSink`: changes are written after the call that made them (it may run inside a
    request's write transaction), by one writer per connection taking what is pending each round, so the last
    change lands last."""

    def __init__(self, pool: ProviderPool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self._settings = dict(connection.provider_settings)
        self._pending: dict[str, str] = {}
        self._writing: asyncio.Task[None] | None = None

    async def __call__(self, changes: Mapping[str, str]) -> None:
        self._pending.update(changes)
        if self._writing is None:
            task = self._writing = asyncio.get_running_loop().create_task(self._write_all())
            self._pool._closing.add(task)  # awaited at shutdown, so a stop does not lose it
            task.add_done_callback(self._pool._closing.discard)

    async def _write_all(self) -> None:
        try:
            while self._pending:
                changes = dict(self._pending)
                self._pending.clear()
                if not await self._pool._write_with_retries(self._connection, changes):
                    return
                self._settings.update(changes)
                self._pool._written(self._connection, self._settings)
        finally:
            self._writing = None

    async def stored(self, key: str) -> str | None:
        if self._pool.read_settings is None:
            return None
        settings = await self._pool.read_settings(self._connection)
        value = settings.get(key) if settings is not None else None
        return str(value) if value is not None else None

