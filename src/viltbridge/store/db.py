"""Engines for both tiers: sync (CLI, migrations, workers) and async (web), from one configured URL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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


def async_engine(database_url: str) -> AsyncEngine:
    _, url = _drivers(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
