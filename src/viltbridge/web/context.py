"""What every request handler needs, built once per process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from viltbridge import connections
from viltbridge.config import Settings
from viltbridge.core.clock import Clock
from viltbridge.core.models import Connection
from viltbridge.core.provider import Provider, SettingsSink
from viltbridge.core.services import LaunchSettings
from viltbridge.crypto import Keyring
from viltbridge.providers import build_provider
from viltbridge.store.db import Database

if TYPE_CHECKING:
    from viltbridge.jobs.queue import JobQueue

log = logging.getLogger("viltbridge.providers")


WRITE_ATTEMPTS = 6  # about 30 s of retries: longer than any request holds SQLite's write lock

# Stores settings a provider changed for a connection (id, name, the changed keys and values).
SettingsWriter = Callable[[Connection, Mapping[str, str]], Awaitable[None]]


def _fingerprint(provider: str, settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps([provider, dict(settings)], sort_keys=True).encode()).hexdigest()


@dataclass
class ProviderPool:
    """One adapter per connection and settings version, so clients keep their tokens and rate-limit state."""

    # Where settings the provider itself changes (a rotated refresh token) are stored; None keeps them in memory.
    write_settings: SettingsWriter | None = None
    _adapters: dict[tuple[int, str], Provider] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def for_connection(self, connection: Connection) -> Provider:
        key = (connection.id, _fingerprint(connection.provider, connection.provider_settings))
        adapter = self._adapters.get(key)
        if adapter is None:
            for stale in [k for k in self._adapters if k[0] == connection.id]:
                self._retire(self._adapters.pop(stale))  # settings changed: the old adapter's clients go
            adapter = self._adapters[key] = build_provider(
                connection.provider, connection.provider_settings, self._sink_for(connection))
        return adapter

    def _sink_for(self, connection: Connection) -> SettingsSink | None:
        if self.write_settings is None:
            return None
        settings = dict(connection.provider_settings)
        pending: dict[str, str] = {}
        writing: list[asyncio.Task[None]] = []

        async def write_all() -> None:
            """One writer per connection, taking what is pending each round: the last change lands last."""
            try:
                while pending:
                    changes = dict(pending)
                    pending.clear()
                    old_key = (connection.id, _fingerprint(connection.provider, settings))
                    if not await self._write_with_retries(connection, changes):
                        return
                    settings.update(changes)
                    # The adapter that reported the change already uses it: file it under the new settings, so
                    # the next request (which reads them) keeps this adapter and its token cache.
                    adapter = self._adapters.pop(old_key, None)
                    if adapter is not None:
                        self._adapters[(connection.id, _fingerprint(connection.provider, settings))] = adapter
            finally:
                writing.clear()

        async def store(changes: Mapping[str, str]) -> None:
            # Written after the call that renewed the token: it may run inside a request's write transaction.
            pending.update(changes)
            if not writing:
                task = asyncio.get_running_loop().create_task(write_all())
                writing.append(task)
                self._closing.add(task)  # awaited at shutdown, so a stop does not lose it
                task.add_done_callback(self._closing.discard)

        return store

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

    def _retire(self, adapter: Provider) -> None:
        task = asyncio.get_running_loop().create_task(adapter.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every adapter (at shutdown)."""
        adapters, self._adapters = list(self._adapters.values()), {}
        await asyncio.gather(*(adapter.aclose() for adapter in adapters), *self._closing, return_exceptions=True)


@dataclass
class AppContext:
    settings: Settings
    keyring: Keyring
    db: Database
    clock: Clock
    public_url: str
    queue: JobQueue | None = None  # None in processes that only read (the CLI)
    providers: ProviderPool = field(default_factory=ProviderPool)

    def __post_init__(self) -> None:
        if self.providers.write_settings is None:
            self.providers.write_settings = self.store_provider_settings

    async def store_provider_settings(self, connection: Connection, changes: Mapping[str, str]) -> None:
        """Settings a provider changed (a rotated refresh token), encrypted with the connection and audited."""
        async with self.db.transaction() as db:
            await db.run_sync(lambda s: connections.change(s, self.keyring, connection.name, dict(changes),
                                                           actor=f"provider:{connection.provider}"))

    async def kick(self, job_ids: list[int]) -> None:
        """Hand jobs committed by a request to the workers (queue I/O off the event loop)."""
        if job_ids and self.queue is not None:
            await asyncio.to_thread(self.queue.kick, job_ids)

    @cached_property
    def launch(self) -> LaunchSettings:
        return LaunchSettings(
            public_url=self.public_url,
            keys=self.keyring.derived("launch-link"),
            max_age=timedelta(minutes=self.settings.launch_link_max_age_minutes),
        )

    @cached_property
    def access_token_keys(self) -> list[bytes]:
        return self.keyring.derived("oauth-access-token")

    @property
    def lms_base_url(self) -> str:
        return self.public_url.rstrip("/") + (self.settings.prefix or "")
