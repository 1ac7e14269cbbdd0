"""What every request handler and job needs, built once per process (by `viltbridge.bootstrap`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from viltbridge.app import connections
from viltbridge.app.launches import LaunchSettings
from viltbridge.app.read_cache import ReadCache
from viltbridge.config import Settings
from viltbridge.core.clock import Clock
from viltbridge.core.models import Connection, Session
from viltbridge.providers.pool import ProviderPool
from viltbridge.security.crypto import Keyring
from viltbridge.store import changes
from viltbridge.store.db import Database
from viltbridge.store.repository import ConnectionRecord, connection_from_row
from viltbridge.store.tables import ConnectionRow

# How long this process trusts what it read for the launch path. A change made in this process (a rotated secret,
# a deactivated connection, a session saved or cancelled) takes effect here at once; in the other processes of the
# deployment within these many seconds. A click on the launch link reads the session again, so nobody joins a
# class cancelled meanwhile.
CALLER_CACHE_SECONDS = 5.0
SESSION_CACHE_SECONDS = 2.0


class CachedCaller:
    """A connection's row as the LMS authenticates against it, and the connection it describes (its settings
    decrypted on first use: only once the caller has proved who it is).

    It also remembers a hash of the last secret that matched the row's digest, so the next request with that
    secret costs a SHA-256 and a constant-time comparison of two fixed-length hashes instead of the salted HMAC
    (a quarter of the time). The memory lives as long as the cache entry: a rotated secret is a new row, read into
    a new CachedCaller that remembers nothing."""

    __slots__ = ("__dict__", "_keyring", "_verified_secret", "row")

    def __init__(self, row: ConnectionRecord, keyring: Keyring) -> None:
        self.row = row
        self._keyring = keyring
        self._verified_secret: bytes | None = None  # SHA-256 of the secret last verified against `row`

    @cached_property
    def connection(self) -> Connection:
        return connection_from_row(self.row, self._keyring)

    def secret_matches(self, secret: str) -> bool:
        """Whether `secret` is this connection's LMS secret (compared in constant time either way)."""
        given = hashlib.sha256(secret.encode("utf-8")).digest()
        if self._verified_secret is not None and hmac.compare_digest(given, self._verified_secret):
            return True
        if not connections.check_secret(self.row, secret):
            return False
        self._verified_secret = given
        return True


class Queue(Protocol):
    """What the application needs of the job queue (`viltbridge.jobs.queue.JobQueue`, which the application may not
    import: the jobs package imports the application)."""

    def kick(self, job_ids: Sequence[int], eta: datetime | None = None) -> None: ...


@dataclass
class AppContext:
    settings: Settings
    keyring: Keyring
    db: Database
    clock: Clock
    public_url: str
    queue: Queue | None = None  # None in processes that only read (the CLI)
    providers: ProviderPool = field(default_factory=ProviderPool)
    # The launch path's reads: callers by ("username", name) or ("id", connection id), sessions by
    # (connection id, external id); None is kept too (no such caller, no such session).
    callers: ReadCache[tuple[str, object], CachedCaller | None] = field(
        default_factory=lambda: ReadCache(CALLER_CACHE_SECONDS))
    sessions: ReadCache[tuple[int, str], Session | None] = field(
        default_factory=lambda: ReadCache(SESSION_CACHE_SECONDS))

    def __post_init__(self) -> None:
        if self.providers.write_settings is None:
            self.providers.write_settings = self.store_provider_settings
        if self.providers.read_settings is None:
            self.providers.read_settings = self.stored_provider_settings
        self._stop_listening = changes.listen(_forgetting_for(weakref.ref(self)))

    def forget_changed(self, changed: changes.Changed) -> None:
        """Rows a commit in this process changed are read afresh from now on."""
        if changed.connections:
            self.callers.clear()  # keyed by username and by id; connections change rarely
        if changed.sessions:
            self.sessions.forget(changed.sessions)

    async def store_provider_settings(self, connection: Connection, changes: Mapping[str, str]) -> None:
        """Settings a provider changed (a rotated refresh token), encrypted with the connection and audited."""
        async with self.db.transaction() as db:
            await db.run_sync(lambda s: connections.change(s, self.keyring, connection.name, dict(changes),
                                                           actor=f"provider:{connection.provider}"))

    async def stored_provider_settings(self, connection: Connection) -> Mapping[str, Any] | None:
        """A connection's provider settings as stored now, decrypted (None: the connection is gone)."""
        async with self.db.reader() as db:
            row = await db.run_sync(lambda s: s.get(ConnectionRow, connection.id))
            return None if row is None else dict(self.keyring.decrypt_json(row.provider_settings))

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

    async def aclose(self) -> None:
        """Close what the context holds: the provider adapters, then the database's connections."""
        self._stop_listening()
        await self.providers.aclose()
        await self.db.dispose()


def _forgetting_for(ref: weakref.ReferenceType[AppContext]) -> Callable[[changes.Changed], None]:
    """The change listener of one context, which does not keep the context alive."""
    def forget(changed: changes.Changed) -> None:
        ctx = ref()
        if ctx is not None:
            ctx.forget_changed(changed)

    return forget


class _CarriesApp(Protocol):
    """A Starlette request or websocket: the web app's lifespan keeps the context in `app.state.ctx`."""

    @property
    def app(self) -> Any: ...


def context_of(request: _CarriesApp) -> AppContext:
    """The process's context, for a request handler."""
    ctx: AppContext = request.app.state.ctx
    return ctx
