"""What every request handler needs, built once per process."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from viltbridge.config import Settings
from viltbridge.core.clock import Clock
from viltbridge.core.models import Connection
from viltbridge.core.provider import Provider
from viltbridge.core.services import LaunchSettings
from viltbridge.crypto import Keyring
from viltbridge.providers import build_provider
from viltbridge.store.db import Database

if TYPE_CHECKING:
    from viltbridge.jobs.queue import JobQueue


@dataclass
class ProviderPool:
    """One adapter per connection and settings version, so clients keep their tokens and rate-limit state."""

    _adapters: dict[tuple[int, str], Provider] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def for_connection(self, connection: Connection) -> Provider:
        fingerprint = hashlib.sha256(
            json.dumps([connection.provider, connection.provider_settings], sort_keys=True).encode()
        ).hexdigest()
        key = (connection.id, fingerprint)
        adapter = self._adapters.get(key)
        if adapter is None:
            for stale in [k for k in self._adapters if k[0] == connection.id]:
                self._retire(self._adapters.pop(stale))  # settings changed: the old adapter's clients go
            adapter = self._adapters[key] = build_provider(connection.provider, connection.provider_settings)
        return adapter

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
