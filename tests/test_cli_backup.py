"""`viltbridge backup PATH`: a consistent copy of the embedded SQLite database while it is written to."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_postgres_database
from viltbridge.store import migrate


@pytest.fixture
def embedded_database(run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default's database file, whichever database the rest of the suite runs on (backup is for
    SQLite only), as the database the CLI uses."""
    path = tmp_path / "embedded.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    monkeypatch.setenv("VILTBRIDGE_DATABASE_URL", url)
    return path


def test_a_backup_taken_while_the_database_is_written_is_whole_and_consistent(run: Any, embedded_database: Path,
                                                                             tmp_path: Path) -> None:
    source = embedded_database
    with sqlite3.connect(source) as setup:
        setup.execute("CREATE TABLE writes_during_backup (batch INTEGER, n INTEGER)")
    stop = threading.Event()
    written = threading.Event()

    def write() -> None:
        # Each transaction adds two rows of one batch: a copy holding half a transaction would show an odd count.
        writer = sqlite3.connect(source, timeout=30)
        batch = 0
        while not stop.is_set():
            with writer:
                writer.executemany("INSERT INTO writes_during_backup VALUES (?, ?)", [(batch, 1), (batch, 2)])
            batch += 1
            if batch == 50:
                written.set()
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert written.wait(30)
        result = run("backup", str(tmp_path / "copy.db"))
        after = run("backup", str(tmp_path / "second.db"))
    finally:
        stop.set()
        thread.join()
    assert "copied to" in result.stdout
    assert "key file" in result.output and "cannot be read" in result.output  # the key reminder
    copies = []
    for name in ("copy.db", "second.db"):
        with sqlite3.connect(tmp_path / name) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            count, batches = copy.execute(
                "SELECT count(*), count(DISTINCT batch) FROM writes_during_backup").fetchone()
            assert count == 2 * batches and count >= 100
            assert copy.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
            copies.append(count)
        copy.close()
    assert copies[1] > copies[0]  # the writer went on during and between the backups
    assert after.exit_code == 0


def test_an_existing_file_is_replaced_only_with_force(run: Any, embedded_database: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    target.write_text("an older backup")
    refused = run("backup", str(target), ok=False)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert target.read_text() == "an older backup"
    run("backup", str(target), "--force")
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)


def test_postgresql_is_refused_with_pg_dump_named(run: Any, postgres_template: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with contextmanager(fresh_postgres_database)(postgres_template) as url:
        monkeypatch.setenv("VILTBRIDGE_DATABASE_URL", url)
        refused = run("backup", str(tmp_path / "copy.db"), ok=False)
    assert refused.exit_code == 1
    assert "pg_dump" in refused.output
    assert not (tmp_path / "copy.db").exists()
