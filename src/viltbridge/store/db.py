"""Engines for both tiers: sync (CLI, migrations, workers) and async (web), from one configured URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

T = TypeVar("T")


def _drivers(database_url: str) -> tuple[URL, URL]:
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite"), url.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg"), url.set(drivername="postgresql+asyncpg")
    raise ValueError(
        f"VILTBRIDGE_DATABASE_URL uses '{backend}'; use sqlite:///path.db or postgresql://user@host/db"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait on the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def sync_engine(database_url: str) -> sa.Engine:
    url, _ = _drivers(database_url)
    engine = sa.create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_take_over_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own; _begin_immediate does


def _begin_immediate(connection: sa.Connection) -> None:
    # Write transactions take SQLite's write lock when they start, not at their first write, so two of them never
    # interleave: the second waits (busy_timeout) and then reads what the first committed. No lost updates.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def async_engine(database_url: str) -> AsyncEngine:
    _, url = _drivers(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_take_over_transactions)
        sa.event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class SyncRunner(Protocol):
    """What repositories are run through: `AsyncSession` has this method, and so has `InlineReader`."""

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T: ...


class Readable(Protocol):
    """What read-only repository functions use: an ORM `Session` has it, and so has `InlineReader`."""

    def connection(self) -> sa.Connection: ...


class InlineReader:
    """Runs read-only repository functions directly on one SQLite connection, in the event loop's thread.

    Used only for read-only requests on SQLite: a WAL read never waits on a writer and takes microseconds, while
    a hop to aiosqlite's thread costs far more than the query, and an ORM session per request costs more than
    the query too (measured, per request: 3 reads via aiosqlite 4.3 ms, inline through an ORM session 1.2 ms,
    inline on this connection with prebuilt statements ~0.12 ms; see docs/decisions.md). Writes keep the threaded
    driver, so a lock wait never blocks the loop. Functions that write fail here: they need an ORM session.
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def connection(self) -> sa.Connection:
        return self._connection

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self, *args)


class Database:
    """Both tiers' handles on one database: `transaction()` for writes, `reader()` for read-only requests."""

    def __init__(self, database_url: str) -> None:
        self.engine = async_engine(database_url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # One connection serves every inline read: they run one at a time, in the event loop's thread.
        self._inline = sync_engine(database_url).connect() if self.engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[SyncRunner]:
        if self._inline is None:
            async with self._sessions() as session:
                yield session
            return
        try:
            yield InlineReader(self._inline)
        finally:
            self._inline.rollback()  # ends the implicit transaction, so no read snapshot outlives the request

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._inline is not None:
            self._inline.close()
            self._inline.engine.dispose()


# SQLSTATEs meaning "the server is not there for you right now": connection exceptions (class 08), an
# administrator's or a crash's shutdown, starting up, too many connections.
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached for now (restarting, failing over, refusing connections),
    rather than that a statement was wrong. asyncpg lets socket errors of a new connection through unwrapped, and
    wraps "the database system is shutting down" as a plain DBAPIError, so classes alone do not tell."""
    if isinstance(exc, ConnectionError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    driver_error = getattr(exc.orig, "driver_exception", exc.orig)
    sqlstate = getattr(driver_error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES)
