"""Fault tests on real processes: a PostgreSQL database of their own, the keys their processes share, and the
LMS's credentials for one connection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session as OrmSession

from tests.conftest import fresh_postgres_database
from viltbridge.app import connections
from viltbridge.security.crypto import load_keyring
from viltbridge.store.db import sync_engine


@dataclass
class World:
    """One PostgreSQL database, the encryption key every process of the test shares, and where logs go."""

    database_url: str
    secret_key: str
    engine: sa.Engine
    tmp: Path

    def create_connection(self, name: str, provider: str, **pairs: str) -> tuple[str, str]:
        """A connection; the LMS's (username, password) for it."""
        keyring = load_keyring(self.secret_key, self.tmp / "unused.key")
        with OrmSession(self.engine) as db, db.begin():
            created = connections.create(db, keyring, name, provider, dict(pairs))
            return created.row.username, created.password

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]

    def logs(self) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                         for log in sorted(self.tmp.glob("*.log")))


@pytest.fixture
def world(postgres_template: str, tmp_path: Path) -> Iterator[World]:
    for database_url in fresh_postgres_database(postgres_template):
        engine = sync_engine(database_url)
        try:
            yield World(database_url, Fernet.generate_key().decode(), engine, tmp_path)
        finally:
            engine.dispose()
