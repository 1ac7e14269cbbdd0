"""Engines for both tiers: sync (CLI, migrations, workers) and async (web), from one configured URL."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from viltbridge.config import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a caller waits on the database before giving up, in seconds (`statement` None: no limit). A request
    that gives up is answered 503 with Retry-After (web/app.py), so a database that accepts connections and never
    answers (hung, or cut off by a partition) makes requests fail promptly instead of hanging."""

    connect: float = 5.0
    statement: float | None = 10.0
    pool: float = 5.0  # waiting for a pooled connection to come free
    sqlite_busy: float = 8.0  # a SQLite write waiting for another writer's lock

    @classmethod
    def from_settings(cls, settings: Settings) -> DatabaseTimeouts:
        return cls(connect=settings.database_connect_timeout_seconds,
                   statement=settings.database_statement_timeout_seconds,
                   pool=settings.database_pool_timeout_seconds,
                   sqlite_busy=settings.database_busy_timeout_seconds)


# Migrations and one-off tools: opening a connection is bounded, a statement is not (a schema change may rightly
# run long).
CONNECT_ONLY = DatabaseTimeouts(statement=None)

# The inline reader waits in the event loop's thread, where any wait holds up every request. A WAL read meets a lock
# only for moments (a connection recovering the WAL after a crash) or when another program holds the database
# exclusively; the first passes within this, the second is answered 503 instead of stopping the server.
INLINE_READ_BUSY_SECONDS = 0.25


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


def _sqlite_pragmas(busy_seconds: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait on the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={max(1, round(busy_seconds * 1000))}")
        cursor.close()

    return on_connect


def _statement_timeout_ms(timeouts: DatabaseTimeouts) -> str | None:
    return None if timeouts.statement is None else str(max(1, round(timeouts.statement * 1000)))


def sync_engine(database_url: str, timeouts: DatabaseTimeouts = CONNECT_ONLY) -> sa.Engine:
    url, _ = _drivers(database_url)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, pool_timeout=timeouts.pool)
        sa.event.listen(engine, "connect", _sqlite_pragmas(timeouts.sqlite_busy))
        return engine
    # libpq counts its connect timeout in whole seconds, and treats less than 2 as 2.
    connect_args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(timeouts.connect))}
    if (statement_ms := _statement_timeout_ms(timeouts)) is not None:
        options = url.query.get("options")
        own_options = options if isinstance(options, str) else ""
        connect_args["options"] = f"{own_options} -c statement_timeout={statement_ms}".strip()
    return sa.create_engine(url, pool_pre_ping=True, pool_timeout=timeouts.pool, connect_args=connect_args)


def _sqlite_take_over_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own; _begin_immediate does


def _begin_immediate(connection: sa.Connection) -> None:
    # Write transactions take SQLite's write lock when they start, not at their first write, so two of them never
    # interleave: the second waits (busy_timeout) and then reads what the first committed. No lost updates.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _drop_connections_that_timed_out(context: sa.engine.ExceptionContext) -> None:
    if isinstance(context.original_exception, TimeoutError):
        # asyncpg gave up waiting (command_timeout): the server may still be busy on this connection, or gone. Dropped
        # rather than rolled back and pooled, the next request opens a fresh one instead of queueing behind it; the
        # rest of the pool stays, as one slow statement says nothing about the other connections.
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def async_engine(database_url: str, timeouts: DatabaseTimeouts = DatabaseTimeouts()) -> AsyncEngine:
    _, url = _drivers(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, pool_timeout=timeouts.pool)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas(timeouts.sqlite_busy))
        sa.event.listen(engine.sync_engine, "connect", _sqlite_take_over_transactions)
        sa.event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    # asyncpg's own connect timeout is 60 s, and it waits for a query's answer for ever.
    connect_args: dict[str, Any] = {"timeout": timeouts.connect}
    if (statement_ms := _statement_timeout_ms(timeouts)) is not None:
        # The server cancels a statement that runs too long (a lock wait, an overloaded server) and the connection
        # stays usable; the client gives up as well, for a server that does not answer at all.
        connect_args["server_settings"] = {"statement_timeout": statement_ms}
        connect_args["command_timeout"] = timeouts.statement
    engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=timeouts.pool,
                                 connect_args=connect_args)
    sa.event.listen(engine.sync_engine, "handle_error", _drop_connections_that_timed_out)
    return engine


class SyncRunner(Protocol):
    """What repositories are run through: `AsyncSession` has this method, and so have `InlineReader` and
    `LazySession`."""

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


class LazySession:
    """A read-only ORM session opened at its first use and closed with the request: a read that the launch path's
    caches answer opens none. Making and closing an `AsyncSession` costs about 35 us even when no query runs
    (measured on PostgreSQL), more than the rest of the cached launch path's work in the database layer."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        if self._session is None:
            self._session = self._sessions()
        return await self._session.run_sync(fn, *args)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class ReadOnly:
    """The async context of a read-only request: SQLite's inline reader, or else a `LazySession`. A class rather
    than an `asynccontextmanager`: the launch endpoint enters one per request, and an async generator per request
    costs more than the rest of this."""

    __slots__ = ("_inline", "_lazy", "_sessions")

    def __init__(self, sessions: async_sessionmaker[AsyncSession], inline: sa.Connection | None) -> None:
        self._sessions = sessions
        self._inline = inline
        self._lazy: LazySession | None = None

    async def __aenter__(self) -> SyncRunner:
        if self._inline is not None:
            return InlineReader(self._inline)
        self._lazy = LazySession(self._sessions)
        return self._lazy

    async def __aexit__(self, *_: object) -> None:
        if self._lazy is not None:
            await self._lazy.close()
        elif self._inline is not None:
            self._inline.rollback()  # ends the implicit transaction, so no read snapshot outlives the request


class Database:
    """Both tiers' handles on one database: `transaction()` for writes, `reader()` for read-only requests."""

    def __init__(self, database_url: str, timeouts: DatabaseTimeouts = DatabaseTimeouts()) -> None:
        self.timeouts = timeouts
        self.engine = async_engine(database_url, timeouts)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # One connection serves every inline read: they run one at a time, in the event loop's thread.
        self._inline = (sync_engine(database_url, replace(timeouts, sqlite_busy=INLINE_READ_BUSY_SECONDS)).connect()
                        if self.engine.dialect.name == "sqlite" else None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions.begin() as session:
            yield session

    def reader(self) -> ReadOnly:
        """`async with database.reader() as db:` a read-only request's runner."""
        return ReadOnly(self._sessions, self._inline)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._inline is not None:
            self._inline.close()
            self._inline.engine.dispose()


# SQLSTATEs meaning "the server is not there for you right now": connection exceptions (class 08), an
# administrator's or a crash's shutdown, starting up, too many connections.
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
_QUERY_CANCELED = "57014"  # also an administrator's pg_cancel_backend(); ours says "statement timeout"
_DRIVER_MODULES = ("asyncpg.", "psycopg.", "aiosqlite.")


def _raised_by_a_driver(exc: BaseException) -> bool:
    """Whether the exception came out of the database driver: a TimeoutError from asyncpg (connecting, or waiting for
    an answer) is the database's, one from a provider call or anything else is not."""
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
            return True
        frame = frame.tb_next
    return False


def database_timed_out(exc: BaseException) -> bool:
    """Whether `exc` says the database did not answer within its timeout (DatabaseTimeouts): no connection in time,
    none free in the pool, a statement cut off by the statement timeout, or SQLite's lock still held by another
    writer when the busy timeout ran out."""
    if isinstance(exc, sa.exc.TimeoutError):  # the pool: no connection came free
        return True
    if isinstance(exc, TimeoutError):
        return _raised_by_a_driver(exc)
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    driver_error = getattr(exc.orig, "driver_exception", exc.orig)
    if getattr(driver_error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:  # another writer's lock, past busy
        return True
    return getattr(driver_error, "sqlstate", None) == _QUERY_CANCELED and "statement timeout" in str(driver_error)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached for now (restarting, failing over, refusing connections, not
    answering in time), rather than that a statement was wrong. asyncpg lets socket errors and timeouts of a new
    connection through unwrapped, and wraps "the database system is shutting down" as a plain DBAPIError, so classes
    alone do not tell."""
    if isinstance(exc, ConnectionError) or database_timed_out(exc):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    driver_error = getattr(exc.orig, "driver_exception", exc.orig)
    sqlstate = getattr(driver_error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES)
