"""Administering connections (one per LMS integration): create, change, (de)activate, authenticate.

Sync use cases over a SQLAlchemy Session, for the CLI and (through `app.uow.run`) the console; and the console's
overview of one connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session as OrmSession

from viltbridge.app import connection_settings
from viltbridge.app.connection_health import Verdict, judge
from viltbridge.app.connection_settings import SettingField
from viltbridge.app.uow import unit_of_work
from viltbridge.core.errors import DomainError, InvalidInput, NotFound
from viltbridge.core.provider import HealthItem
from viltbridge.core.redaction import redact
from viltbridge.providers.registry import PROVIDERS, check_settings, provider_spec
from viltbridge.providers.url_guard import check_settings_urls
from viltbridge.security.crypto import (
    MIN_CHOSEN_SECRET_LENGTH,
    Keyring,
    new_salt,
    new_secret,
    secret_digest,
    secret_matches,
)
from viltbridge.store import audit, console_views, repository
from viltbridge.store.tables import AuditRow, ConnectionRow

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,200}$")

OPTION_KEYS = ("automatic_cancellation", "extended_options", "launch_window_minutes")


@dataclass(frozen=True)
class Created:
    row: ConnectionRow
    password: str


def provider_kinds() -> list[tuple[str, str]]:
    """(kind, name shown to people) of every provider a connection can use, sorted by kind."""
    return [(kind, PROVIDERS[kind].display_name) for kind in sorted(PROVIDERS)]


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{key} must be true or false, not '{value}'.", fields={key: "must be true or false"})


def _apply_option(row: ConnectionRow, key: str, value: str) -> None:
    if key == "launch_window_minutes":
        try:
            minutes = int(value)
        except ValueError:
            raise InvalidInput(f"launch_window_minutes must be a whole number of minutes, not '{value}'.",
                               fields={key: "must be a whole number of minutes"}) from None
        if not 0 <= minutes <= 24 * 60:
            raise InvalidInput("launch_window_minutes must be between 0 and 1440.",
                               fields={key: "must be between 0 and 1440"})
        row.launch_window_minutes = minutes
    else:
        setattr(row, key, _parse_bool(key, value))


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"'{pair}' is not key=value; write e.g. launch_window_minutes=30.")
        parsed[key.strip()] = value
    return parsed


def _split(pairs: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    options = {key: value for key, value in pairs.items() if key in OPTION_KEYS}
    settings = {key: value for key, value in pairs.items() if key not in OPTION_KEYS}
    return options, settings


def create(
    db: OrmSession,
    keyring: Keyring,
    name: str,
    provider: str,
    pairs: dict[str, str],
    username: str | None = None,
    password: str | None = None,
    *,
    actor: str = "cli",
) -> Created:
    if not _NAME.match(name):
        raise InvalidInput(
            f"Connection name '{name}' must start with a letter or digit and hold only a-z, 0-9, '-' and '_' "
            "(at most 63 characters), e.g. acme-zoom.",
            fields={"name": "must start with a letter or digit and hold only a-z, 0-9, '-' and '_' (at most 63 "
                            "characters), e.g. acme-zoom"})
    try:
        provider_spec(provider)  # says which kinds there are when `provider` is none of them
    except InvalidInput as unknown:
        raise InvalidInput(unknown.message, fields={"provider": unknown.message}) from None
    if repository.connection_row_by_name(db, name) is not None:
        raise InvalidInput(f"A connection named '{name}' exists already; pick another name or change it with `set`.",
                           fields={"name": "a connection of this name exists already; pick another name"})
    username = username or name
    if not _USERNAME.match(username):
        raise InvalidInput("The username may hold letters, digits and . _ @ - and be at most 200 characters long.")
    if repository.connection_row_by_username(db, username) is not None:
        raise InvalidInput(f"The username '{username}' is used by another connection; choose another one.")
    if password is not None and len(password) < MIN_CHOSEN_SECRET_LENGTH:
        raise InvalidInput(
            f"A chosen password must be at least {MIN_CHOSEN_SECRET_LENGTH} characters; it is stored only as a "
            "digest, so it must be hard to guess. Leave --password out to get a generated one."
        )
    options, settings = _split(pairs)
    check_settings(provider, settings)
    check_settings_urls(provider, settings)
    secret = password or new_secret()
    salt = new_salt()
    now = datetime.now(UTC)
    row = ConnectionRow(
        name=name, provider=provider, provider_settings=keyring.encrypt_json(settings), username=username,
        secret_salt=salt, secret_digest=secret_digest(secret, salt), automatic_cancellation=True,
        extended_options=False, launch_window_minutes=15, active=True, created_at=now, updated_at=now,
    )
    for key, value in options.items():
        _apply_option(row, key, value)
    db.add(row)
    db.flush()
    audit.record(db, now, actor, "connection.create", f"connection:{name}", after=_audited(row, settings))
    return Created(row=row, password=secret)


def _audited(row: ConnectionRow, settings: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a connection (secret-looking settings are redacted by the log)."""
    return {"provider": row.provider, "username": row.username, "active": row.active,
            "automatic_cancellation": row.automatic_cancellation, "extended_options": row.extended_options,
            "launch_window_minutes": row.launch_window_minutes, "provider_settings": dict(settings)}


def require(db: OrmSession, name: str) -> ConnectionRow:
    row = repository.connection_row_by_name(db, name)
    if row is None:
        known = ", ".join(r.name for r in repository.all_connection_rows(db)) or "none yet"
        raise NotFound(f"No connection named '{name}'. Known connections: {known}.")
    return row


def change(db: OrmSession, keyring: Keyring, name: str, pairs: dict[str, str], *, actor: str = "cli") -> ConnectionRow:
    """Change options and provider settings; an empty value removes a provider setting."""
    row = require(db, name)
    options, updates = _split(pairs)
    settings: dict[str, Any] = keyring.decrypt_json(row.provider_settings)
    before = _audited(row, settings)
    settings = dict(settings)
    for key, value in updates.items():
        if value == "":
            settings.pop(key, None)
        else:
            settings[key] = value
    check_settings(row.provider, settings)
    # Only what changes: a stored token rotated by the provider must not fail on a URL saved before the guard.
    check_settings_urls(row.provider, {key: value for key, value in updates.items() if value != ""})
    for key, value in options.items():
        _apply_option(row, key, value)
    row.provider_settings = keyring.encrypt_json(settings)
    row.updated_at = datetime.now(UTC)
    db.flush()
    audit.record(db, row.updated_at, actor, "connection.change", f"connection:{name}", before=before,
                 after=_audited(row, settings))
    return row


def _options(row: ConnectionRow) -> dict[str, Any]:
    return {key: getattr(row, key) for key in OPTION_KEYS}


def create_from_form(db: OrmSession, keyring: Keyring, name: str, provider: str, typed: dict[str, str], *,
                     actor: str) -> Created:
    """`create` from the console's form: fields left at their default are not stored, empty ones are left out."""
    try:
        fields = connection_settings.form_fields(provider)
    except InvalidInput as unknown:
        raise InvalidInput(unknown.message, fields={"provider": unknown.message}) from None
    return create(db, keyring, name, provider, connection_settings.changed_pairs(fields, {}, typed), actor=actor)


def change_from_form(db: OrmSession, keyring: Keyring, name: str, typed: dict[str, str], *, actor: str) -> bool:
    """`change` from the console's form: only what differs from what is stored, so an unchanged field keeps its
    value (or default) and an empty secret keeps the stored secret. False when nothing changed."""
    row = require(db, name)
    stored = {**_options(row), **keyring.decrypt_json(row.provider_settings)}
    pairs = connection_settings.changed_pairs(connection_settings.form_fields(row.provider), stored, typed)
    if not pairs:
        return False
    change(db, keyring, name, pairs, actor=actor)
    return True


def set_active(db: OrmSession, name: str, active: bool, *, actor: str = "cli") -> ConnectionRow:
    row = require(db, name)
    was = row.active
    row.active, row.updated_at = active, datetime.now(UTC)
    db.flush()
    audit.record(db, row.updated_at, actor, "connection.activate" if active else "connection.deactivate",
                 f"connection:{name}", before={"active": was}, after={"active": active})
    return row


def rotate_secret(db: OrmSession, name: str, password: str | None = None, *, actor: str = "cli") -> Created:
    row = require(db, name)
    if password is not None and len(password) < MIN_CHOSEN_SECRET_LENGTH:
        raise InvalidInput(f"A chosen password must be at least {MIN_CHOSEN_SECRET_LENGTH} characters.",
                           fields={"new_secret": f"must be at least {MIN_CHOSEN_SECRET_LENGTH} characters; or leave "
                                                 "it empty for a generated one"})
    secret = password or new_secret()
    row.secret_salt = new_salt()
    row.secret_digest = secret_digest(secret, row.secret_salt)
    row.updated_at = datetime.now(UTC)
    db.flush()
    audit.record(db, row.updated_at, actor, "connection.rotate-secret", f"connection:{name}",
                 after={"lms_credentials": "rotated"})
    return Created(row=row, password=secret)


def check_secret(row: repository.ConnectionRecord, secret: str) -> bool:
    return secret_matches(secret, row.secret_salt, row.secret_digest)


def describe(row: ConnectionRow, keyring: Keyring, base_path: str, base_url: str) -> dict[str, Any]:
    """What an admin may see: everything but secrets (provider secrets are shown as ***)."""
    settings = keyring.decrypt_json(row.provider_settings)
    return {
        "name": row.name,
        "provider": row.provider,
        "active": row.active,
        "base_path": base_path,
        "base_url": base_url,
        "username": row.username,
        "automatic_cancellation": row.automatic_cancellation,
        "extended_options": row.extended_options,
        "launch_window_minutes": row.launch_window_minutes,
        "provider_settings": redact(dict(sorted(settings.items()))),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@dataclass(frozen=True)
class SettingsForm:
    """What the settings form shows of a connection: its fields, the stored values that are not secret, and which
    secrets are set."""

    fields: list[SettingField]
    values: dict[str, str]
    secrets_set: set[str]


def settings_form(row: ConnectionRow, keyring: Keyring) -> SettingsForm:
    fields = connection_settings.form_fields(row.provider)
    values, secrets_set = connection_settings.stored_text(
        fields, {**_options(row), **keyring.decrypt_json(row.provider_settings)})
    return SettingsForm(fields, values, secrets_set)


@dataclass(frozen=True)
class Overview:
    """One connection as the console shows it: its settings (secrets redacted), recent changes, the work the
    server owes or failed at, the host pool, what the provider adapter itself reports, and the verdict on all
    that."""

    details: dict[str, Any]
    history: list[AuditRow]
    health: console_views.Health
    hosts: list[console_views.Host]
    seen: list[HealthItem]
    verdict: Verdict
    owed: list[console_views.OwedJob]
    form: SettingsForm


def _seen(ctx: AppContext, row: ConnectionRow) -> list[HealthItem]:
    """What this server process has seen of the connection's provider."""
    try:
        return ctx.providers.for_connection(repository.connection_from_row(row, ctx.keyring)).health()
    except DomainError as err:  # settings this version cannot use: say so instead of failing the page
        return [HealthItem("settings", False, err.message)]


@dataclass(frozen=True)
class Listed:
    """One row of the connections list."""

    row: ConnectionRow
    verdict: Verdict


async def listing(ctx: AppContext) -> list[Listed]:
    """Every connection with its health verdict, judged as its own page judges it."""
    now = ctx.clock.now()
    async with unit_of_work(ctx) as work:
        def read(db: OrmSession) -> list[tuple[ConnectionRow, console_views.Health]]:
            return [(row, console_views.health(db, row.id, now)) for row in repository.all_connection_rows(db)]

        rows = await work.db.run_sync(read)
    return [Listed(row, judge(_seen(ctx, row), health)) for row, health in rows]


async def overview(ctx: AppContext, name: str) -> Overview:
    """NotFound when there is no such connection."""
    now = ctx.clock.now()
    async with unit_of_work(ctx) as work:  # ORM reads: console traffic is light
        def read(db: OrmSession) -> tuple[ConnectionRow, dict[str, Any], list[AuditRow], console_views.Health,
                                          list[console_views.Host], list[console_views.OwedJob], SettingsForm]:
            row = require(db, name)
            return (row, describe(row, ctx.keyring, ctx.settings.prefix or "/", ctx.lms_base_url),
                    audit.recent(db, limit=50, target=f"connection:{name}"), console_views.health(db, row.id, now),
                    console_views.host_pool(db, row.id, now), console_views.owed_jobs(db, row.id),
                    settings_form(row, ctx.keyring))

        row, details, history, health, hosts, owed, form = await work.db.run_sync(read)
    seen = _seen(ctx, row)
    return Overview(details, history, health, hosts, seen, judge(seen, health), owed, form)
