"""The operator's CLI: connection create/list/show/set/(de)activate/rotate-secret, migrate, keygen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


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
