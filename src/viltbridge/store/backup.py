"""A consistent copy of the embedded SQLite database while the server runs, through SQLite's online backup API.

The copy is made in one step inside a read transaction: in WAL mode (as the server runs the database) writers go on
meanwhile, and the copy is the database as it was committed when the step began, never half of a transaction."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupRefused(Exception):
    """Why no backup was made, and what to do instead."""


def sqlite_path(database_url: str) -> Path:
    """The database file of a SQLite URL; BackupRefused for any other database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupRefused(
            f"the database is {url.get_backend_name()}, not the embedded SQLite: back it up with the server's own "
            f"tools, e.g. `pg_dump --format=custom --file=viltbridge.dump {url.database or 'DBNAME'}`, and keep the "
            "key (VILTBRIDGE_SECRET_KEY or the key file) with it")
    if not url.database or url.database == ":memory:":
        raise BackupRefused("the database URL names no file (an in-memory database): there is nothing to back up")
    return Path(url.database)


def backup_sqlite(database_url: str, target: Path, *, overwrite: bool = False) -> int:
    """Copy the database to `target` (written beside it, then renamed into place); returns its size in bytes."""
    source = sqlite_path(database_url)
    if not source.exists():
        raise BackupRefused(f"the database file {source.resolve()} does not exist; check VILTBRIDGE_DATABASE_URL")
    if target.exists() and not overwrite:
        raise BackupRefused(f"{target} exists already; choose another path or pass --force to replace it")
    if not target.parent.is_dir():
        raise BackupRefused(f"the directory {target.parent} does not exist; create it first")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        writer = sqlite3.connect(partial)
        try:
            reader.backup(writer)
            writer.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            writer.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    os.chmod(partial, 0o600)  # it holds the same personal data and encrypted settings as the database
    os.replace(partial, target)
    return target.stat().st_size
