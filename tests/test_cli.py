"""The operator's CLI: connection create/list/show/set/(de)activate/rotate-secret, migrate, keygen."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processes import VILTBRIDGE, free_port, process_env


def test_create_prints_what_the_admin_enters_in_the_lms_once(run, tmp_path: Path) -> None:
    result = run("connection", "create", "acme", "--provider", "link", "--set", "launch_window_minutes=30", "--json")
    created = json.loads(result.stdout)
    assert {"name", "provider", "base_path", "username", "password"} <= set(created)
    assert created["base_path"] == "/cornerstone"
    assert created["base_url"] == "https://vilt.example.org/cornerstone"
    assert created["launch_window_minutes"] == 30
    assert len(created["password"]) >= 40
    assert (tmp_path / "cli.key").exists()  # the key file is created on first run
    shown = json.loads(run("connection", "show", "acme", "--json").stdout)
    assert "password" not in shown  # never again
    assert created["password"] not in run("connection", "list").stdout


def test_a_chosen_password_must_be_long(run) -> None:
    result = run("connection", "create", "acme", "--password", "short", ok=False)
    assert result.exit_code == 1
    assert "at least 16 characters" in result.output
    created = json.loads(run("connection", "create", "acme", "--username", "acme-lms",
                             "--password", "a-long-chosen-secret-123", "--json").stdout)
    assert created["username"] == "acme-lms" and created["password"] == "a-long-chosen-secret-123"


def test_bad_names_providers_and_settings_are_explained(run) -> None:
    assert "must start with a letter or digit" in run("connection", "create", "Bad Name", ok=False).output
    assert "Unknown provider 'nope'" in run("connection", "create", "x1", "--provider", "nope", ok=False).output
    wrong = run("connection", "create", "x2", "--set", "room_url_templte=https://x/{room}", ok=False)
    assert "unknown setting" in wrong.output and "room_url_template" in wrong.output
    assert "not key=value" in run("connection", "create", "x3", "--set", "novalue", ok=False).output
    run("connection", "create", "dup")
    assert "exists already" in run("connection", "create", "dup", ok=False).output


def test_set_changes_options_and_provider_settings(run) -> None:
    run("connection", "create", "acme")
    shown = json.loads(run("connection", "set", "acme", "automatic_cancellation=false",
                           "room_url_template=https://meet.example.org/{room}", "--json").stdout)
    assert shown["automatic_cancellation"] is False
    assert shown["provider_settings"]["room_url_template"] == "https://meet.example.org/{room}"
    bad = run("connection", "set", "acme", "launch_window_minutes=soon", ok=False)
    assert "whole number of minutes" in bad.output
    assert "No connection named 'ghost'" in run("connection", "set", "ghost", "a=b", ok=False).output


def test_deactivate_and_activate(run) -> None:
    run("connection", "create", "acme")
    assert json.loads(run("connection", "deactivate", "acme", "--json").stdout)["active"] is False
    assert "deactivated" in run("connection", "deactivate", "acme").stdout
    assert json.loads(run("connection", "activate", "acme", "--json").stdout)["active"] is True


def test_rotate_secret_prints_a_new_one(run) -> None:
    first = json.loads(run("connection", "create", "acme", "--json").stdout)["password"]
    second = json.loads(run("connection", "rotate-secret", "acme", "--json").stdout)["password"]
    assert first != second


def test_provider_secrets_are_encrypted_at_rest_and_hidden(run, database_url: str) -> None:
    import sqlalchemy as sa

    from viltbridge.store.db import sync_engine

    run("connection", "create", "acme", "--set", "room_prefix=abc")
    engine = sync_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT provider_settings, secret_digest FROM connections")).one()
    engine.dispose()
    assert "abc" not in stored[0]  # Fernet ciphertext, not JSON


def test_migrate_and_keygen(run) -> None:
    assert "database at revision" in run("migrate").output
    key = run("keygen").stdout.strip()
    assert len(key) == 44


def test_a_lost_key_file_is_reported_not_replaced(run, tmp_path: Path) -> None:
    run("connection", "create", "acme")
    key = tmp_path / "cli.key"
    key.rename(tmp_path / "moved.key")
    result = run("connection", "show", "acme", ok=False)
    assert result.exit_code == 1
    assert "key file" in result.output and "is missing" in result.output
    assert not key.exists()  # no new key that could not read the stored settings
    (tmp_path / "moved.key").rename(key)
    assert json.loads(run("connection", "show", "acme", "--json").stdout)["name"] == "acme"


def test_the_wrong_key_is_reported_without_a_traceback(run, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    run("connection", "create", "acme")
    monkeypatch.setenv("VILTBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    result = run("connection", "show", "acme", ok=False)
    assert result.exit_code == 1 and "cannot be decrypted" in result.output
    assert "Traceback" not in result.output


UNREACHABLE_COMMANDS = [["serve", "--port", "0"], ["worker"], ["migrate"], ["connection", "list"]]


def _run_cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    from cryptography.fernet import Fernet

    env = process_env(database_url, Fernet.generate_key().decode(), VILTBRIDGE_KEY_FILE=str(tmp_path / "cli.key"),
                      VILTBRIDGE_QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}")
    return subprocess.run([str(VILTBRIDGE), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("command", UNREACHABLE_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_an_unreachable_database_is_said_in_two_lines_not_a_traceback(command: list[str], tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _run_cli(tmp_path, f"postgresql://viltbridge:do-not-print-me@127.0.0.1:{port}/vb", *command)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3, output
    assert f"127.0.0.1:{port}" in output and "Connection refused" in output and "VILTBRIDGE_DATABASE_URL" in output
    assert "do-not-print-me" not in output


@pytest.mark.parametrize("command", [["migrate"], ["connection", "create", "acme"]], ids=" ".join)
def test_a_sqlite_database_in_a_missing_directory_is_named(command: list[str], tmp_path: Path) -> None:
    path = tmp_path / "no such directory" / "viltbridge.db"
    result = _run_cli(tmp_path, f"sqlite:///{path}", *command)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3, output
    assert str(path) in output and "unable to open database file" in output


def test_the_base_url_is_the_public_url_when_set(run) -> None:
    created = run("connection", "create", "acme")
    assert "Base URL : https://vilt.example.org/cornerstone\n" in created.stdout
    assert "guess" not in created.stdout
    assert json.loads(run("connection", "show", "acme", "--json").stdout)["base_url_is_guess"] is False


def test_without_a_public_url_the_base_url_is_called_a_guess(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VILTBRIDGE_PUBLIC_URL")
    created = run("connection", "create", "acme")
    assert ("Base URL : http://127.0.0.1:8000/cornerstone (a guess: set VILTBRIDGE_PUBLIC_URL to the address "
            "Cornerstone reaches this server at)\n") in created.stdout
    described = json.loads(run("connection", "create", "other", "--json").stdout)
    assert described["base_url"] == "http://127.0.0.1:8000/cornerstone" and described["base_url_is_guess"] is True
    assert all(row["base_url_is_guess"] for row in json.loads(run("connection", "list", "--json").stdout))
