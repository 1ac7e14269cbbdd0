"""`viltbridge doctor`: one list of named checks over the configuration, the database, the job queue, the clock and
each connection's provider, each saying ok, warning or failure, what is wrong and how to fix it.

Every check is bounded by a timeout: a provider or a Redis that does not answer gives a failure saying so, never a
doctor that hangs. Checks that block (database drivers, Redis) run in daemon threads, so one stuck past its timeout
cannot hold up the end of the process either."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.config import Settings
from viltbridge.core.errors import DomainError
from viltbridge.core.models import Connection
from viltbridge.core.provider import AttendanceSource
from viltbridge.providers.http.errors import ProviderUnreachable
from viltbridge.providers.registry import build_provider, provider_spec
from viltbridge.security.crypto import Keyring, KeyringError, load_keyring
from viltbridge.security.throttle import parse_networks
from viltbridge.store import migrate, repository
from viltbridge.store.db import DatabaseTimeouts, sync_engine

T = TypeVar("T")

# Past these, signed things go wrong: launch links and OAuth tokens look expired or not yet valid, and providers
# refuse webhook signatures whose timestamps are minutes off (Zoom, Jitsi).
CLOCK_SKEW_WARNING_SECONDS = 2.0
CLOCK_SKEW_FAILURE_SECONDS = 60.0
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works, but not as it should in production
    FAILURE = "failure"  # something is broken or will break: `viltbridge doctor` exits non-zero


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str  # what was seen: what is wrong, or what was verified
    fix: str = ""  # how to fix it (empty when ok)


def _ok(check: str, detail: str) -> Finding:
    return Finding(check, Status.OK, detail)


def _warning(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Status.WARNING, detail, fix)


def _failure(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, Status.FAILURE, detail, fix)


def failed(findings: list[Finding]) -> bool:
    return any(finding.status is Status.FAILURE for finding in findings)


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread: awaiting it can time out, and a driver call stuck past that keeps no one
    waiting (asyncio's default executor would hold the process's exit until it returned)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task as it is
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this any more
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=run, name="doctor-check", daemon=True).start()
    return await future


# --- configuration ------------------------------------------------------------------------------------------


def check_keys(settings: Settings, database_has_connections: Callable[[], bool]) -> Finding:
    name = "secret key"
    if settings.secret_key:
        try:
            keyring = load_keyring(settings.secret_key, settings.key_file)
        except KeyringError as exc:
            return _failure(name, str(exc), "generate a key with `viltbridge keygen` and set VILTBRIDGE_SECRET_KEY "
                                            "to it (the key the settings were written with first, if any)")
        return _ok(name, f"VILTBRIDGE_SECRET_KEY: {len(keyring.fernet_keys)} key(s) load")
    key_file = settings.key_file
    if not key_file.exists():
        try:
            holds_data = database_has_connections()
        except sa.exc.SQLAlchemyError:
            holds_data = False  # the database check says what is wrong with it
        if holds_data:
            return _failure(name, f"the key file {key_file} is missing, and the database holds connections whose "
                                  "settings were encrypted with it",
                            "restore the key file from your backup, or set VILTBRIDGE_SECRET_KEY to that key")
        return _warning(name, f"no key yet: `viltbridge serve` creates {key_file} on first start",
                        "or set VILTBRIDGE_SECRET_KEY (`viltbridge keygen`) and keep it in your secret store")
    try:
        keyring = load_keyring(None, key_file, may_create=False)
    except (KeyringError, OSError) as exc:
        return _failure(name, f"the key file {key_file} cannot be used: {exc}",
                        "put the key the settings were written with back into it (one key per line)")
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        return _warning(name, f"the key file {key_file} may be read by other users (mode {mode:o})",
                        f"chmod 600 {key_file}")
    return _ok(name, f"key file {key_file}: {len(keyring.fernet_keys)} key(s) load, mode {mode:o}")


def check_public_url(settings: Settings) -> Finding:
    name = "public URL"
    fix = "set VILTBRIDGE_PUBLIC_URL to the https address learners and Cornerstone reach, e.g. https://vilt.example.org"
    if not settings.public_url:
        return _failure(name, "VILTBRIDGE_PUBLIC_URL is not set: launch links would point at http://127.0.0.1:8000",
                        fix)
    parts = urlsplit(settings.public_url)
    if parts.scheme == "https" and parts.hostname:
        return _ok(name, settings.public_url)
    if parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS:
        return _warning(name, f"{settings.public_url} is plain http on this machine: fine to try, not for learners",
                        fix)
    return _failure(name, f"{settings.public_url} is not an https URL: launch links and sign-in would travel "
                          "unencrypted", fix)


def check_trusted_proxies(settings: Settings) -> Finding:
    name = "trusted proxies"
    try:
        networks = parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        return _failure(name, str(exc), "list only IP addresses and CIDRs in VILTBRIDGE_TRUSTED_PROXIES")
    if not networks:
        return _ok(name, "none: the socket peer is taken as the client (set VILTBRIDGE_TRUSTED_PROXIES behind a "
                         "reverse proxy)")
    public = [str(n) for n in networks if n.is_global]
    listed = ", ".join(str(n) for n in networks)
    if any(n.prefixlen == 0 for n in networks):
        return _failure(name, f"{listed} trusts every address: anyone can claim any client IP and slip past the "
                              "sign-in throttle", "list only your reverse proxies' addresses")
    if public:
        return _warning(name, f"{listed}: {', '.join(public)} are public addresses",
                        "make sure these are your own proxies; X-Forwarded-For from them is believed")
    return _ok(name, listed)


# --- database, queue, clock ---------------------------------------------------------------------------------


def _sqlite_file(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    return Path(parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def _where(url: str) -> str:
    """A database or Redis URL without its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_database(settings: Settings) -> Finding:
    name = "database"
    url = settings.database_url
    file = _sqlite_file(url)
    if file is not None and not file.exists():
        return _failure(name, f"no database file at {file.resolve()}",
                        "run `viltbridge migrate` (or start `viltbridge serve`, which migrates), or correct "
                        "VILTBRIDGE_DATABASE_URL")
    try:
        current = migrate.current_revision(url)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        return _failure(name, f"cannot reach {_where(url)}: {_reason(exc)}",
                        "check VILTBRIDGE_DATABASE_URL, that the server runs and accepts this user")
    head = migrate.head_revision()
    if current != head:
        return _failure(name, f"{_where(url)} is at migration {current or 'none'}, not the latest ({head})",
                        "run `viltbridge migrate` (workers refuse to start until it has run)")
    return _ok(name, f"{_where(url)} reachable, at the latest migration ({head})")


def _redis_ping(url: str, timeout: float) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def check_queue(url: str, timeout: float) -> Finding:
    name = "job queue"
    backend = sa.engine.make_url(url).get_backend_name()
    try:
        if backend == "sqlite":
            file = _sqlite_file(url)
            if file is None or not str(file):
                return _failure(name, f"{url} names no file", "write it as sqlite:///path/to/viltbridge.queue.db")
            if not file.exists():
                if not file.resolve().parent.is_dir():
                    return _failure(name, f"the directory of {file.resolve()} does not exist",
                                    "create it, or correct VILTBRIDGE_QUEUE_URL")
                return _ok(name, f"SQLite {file.resolve()} (created when the server first starts)")
            queue_file = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
            try:
                queue_file.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                queue_file.close()
            return _ok(name, f"SQLite {file.resolve()} opens")
        if backend == "postgresql":
            engine = sync_engine(url, DatabaseTimeouts(connect=timeout, statement=timeout))
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            finally:
                engine.dispose()
            return _ok(name, f"PostgreSQL {_where(url)} reachable")
        if backend in ("redis", "rediss"):
            _redis_ping(url, timeout)
            return _ok(name, f"Redis {_where(url)} answers PING")
    except Exception as exc:  # any driver's failure, in its words
        return _failure(name, f"cannot reach {_where(url)}: {_reason(exc)}",
                        "check VILTBRIDGE_QUEUE_URL and that the queue's server runs")
    return _failure(name, f"VILTBRIDGE_QUEUE_URL uses '{backend}'",
                    "use sqlite:///file, postgresql://… or redis://…")


def check_rate_limit_store(url: str, timeout: float) -> Finding:
    name = "rate-limit Redis"
    try:
        _redis_ping(url, timeout)
    except Exception as exc:  # any driver's failure, in its words
        return _failure(name, f"cannot reach {_where(url)}: {_reason(exc)}",
                        "check VILTBRIDGE_RATE_LIMIT_URL and that Redis runs; without it each process would "
                        "spend the provider's quota on its own")
    return _ok(name, f"Redis {_where(url)} answers PING")


def check_clock(settings: Settings) -> Finding:
    name = "clock"
    if _sqlite_file(settings.database_url) is not None:
        return _ok(name, "skipped: SQLite runs on this machine's clock (nothing to compare with)")
    engine = sync_engine(settings.database_url, DatabaseTimeouts.from_settings(settings))
    try:
        with engine.connect() as conn:
            before = time.time()
            server_now: datetime = conn.execute(sa.text("SELECT now()")).scalar_one()
            after = time.time()
    except sa.exc.SQLAlchemyError as exc:
        return _failure(name, f"cannot ask the database for its time: {_reason(exc)}", "see the database check")
    finally:
        engine.dispose()
    local_midway = datetime.fromtimestamp((before + after) / 2, UTC)
    skew = abs((server_now - local_midway).total_seconds())
    detail = f"this machine and the database server differ by {skew:.1f} s"
    fix = "run time synchronisation (chrony or systemd-timesyncd) on both machines"
    if skew > CLOCK_SKEW_FAILURE_SECONDS:
        return _failure(name, detail + ": launch links and webhook signatures will be judged expired", fix)
    if skew > CLOCK_SKEW_WARNING_SECONDS:
        return _warning(name, detail, fix)
    return _ok(name, detail)


# --- connections --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    connection: Connection | None
    problem: str  # why the settings could not be read, when connection is None
    host_pool: tuple[int, int]


def _connections(settings: Settings, keyring: Keyring, only: str | None) -> list[tuple[str, _Loaded]]:
    engine = sync_engine(settings.database_url, DatabaseTimeouts.from_settings(settings))
    try:
        with OrmSession(engine) as db:
            rows = repository.all_connection_rows(db)
            found: list[tuple[str, _Loaded]] = []
            for row in rows:
                if only is not None and row.name != only:
                    continue
                pool = repository.host_pool(db, row.id)
                try:
                    found.append((row.name, _Loaded(repository.connection_from_row(row, keyring), "", pool)))
                except KeyringError as exc:
                    found.append((row.name, _Loaded(None, str(exc), pool)))
            return found
    finally:
        engine.dispose()


async def _provider_findings(name: str, connection: Connection, host_pool: tuple[int, int],
                             seconds: float) -> tuple[list[Finding], float | None]:
    """The connection's provider lines, and the provider's clock offset where it answered over HTTP."""
    fix_settings = (f"correct them with `viltbridge connection set {name} key=value` (see `viltbridge connection "
                    f"show {name}`) or on the connection's page in the console")
    try:
        adapter = build_provider(connection.provider, connection.provider_settings)
    except (DomainError, ValueError) as exc:
        return [_failure(f"{name}: provider credentials", f"the settings cannot be used: {exc}", fix_settings)], None
    findings: list[Finding] = []
    clock_offset: float | None = None
    try:
        try:
            checked = await asyncio.wait_for(adapter.check(), seconds)
            clock_offset = checked.clock_offset_seconds
            findings.append(_ok(f"{name}: provider credentials", f"{connection.provider}: {checked.verified}"))
        except TimeoutError:
            findings.append(_failure(f"{name}: provider credentials",
                                     f"{connection.provider} did not answer within {seconds:g} s",
                                     "check the provider's URL in the settings, this machine's outbound network "
                                     "and proxy, and the provider's status page; --timeout waits longer"))
        except ProviderUnreachable as exc:
            findings.append(_failure(f"{name}: provider credentials", f"{connection.provider}: {exc.message}",
                                     "check the provider's URL in the settings (`viltbridge connection show "
                                     f"{name}`), this machine's outbound network and proxy, and the provider's "
                                     "status page"))
        except DomainError as exc:
            findings.append(_failure(f"{name}: provider credentials", f"{connection.provider}: {exc.message}",
                                     fix_settings))
        findings.append(_webhook_finding(name, connection, adapter.capabilities.webhooks,
                                         adapter.capabilities.attendance))
        findings.append(_host_pool_finding(name, connection, adapter.capabilities.host_licences, host_pool))
    finally:
        await adapter.aclose()
    return findings, clock_offset


# A provider's Date header has whole seconds and arrives after a network round trip: only a larger gap means a clock
# is off.
PROVIDER_CLOCK_WARNING_SECONDS = 5.0


def _provider_clock_finding(offsets: dict[str, float]) -> Finding:
    # Date is truncated to the second: the true offset lies in [offset, offset + 1]; judge its middle.
    name, offset = max(offsets.items(), key=lambda item: abs(item[1] + 0.5))
    skew = abs(offset + 0.5)
    gap = "agree to the second" if skew <= 1 else f"differ by about {skew:.0f} s"
    detail = f"this machine and the provider of {name} {gap} (HTTP Date of {len(offsets)} provider(s))"
    fix = "run time synchronisation (chrony or systemd-timesyncd) on this machine"
    if skew > CLOCK_SKEW_FAILURE_SECONDS:
        return _failure("clock (providers)", detail + ": tokens and webhook signatures will be judged expired", fix)
    if skew > PROVIDER_CLOCK_WARNING_SECONDS:
        return _warning("clock (providers)", detail, fix)
    return _ok("clock (providers)", detail)


def _webhook_finding(name: str, connection: Connection, sends_webhooks: bool, attendance: AttendanceSource) -> Finding:
    check = f"{name}: webhook secret"
    key = provider_spec(connection.provider).webhook_secret
    if key is None or not sends_webhooks:
        return _ok(check, f"not needed: {connection.provider} sends no webhooks to viltbridge")
    if connection.provider_settings.get(key):
        return _ok(check, f"{key} is set")
    detail = f"{key} is not set: every webhook delivery from {connection.provider} is refused"
    fix = f"`viltbridge connection set {name} {key}=…` with the secret from the provider's webhook settings"
    if attendance is AttendanceSource.WEBHOOKS:
        return _failure(check, detail + ", and attendance comes only from them", fix)
    return _warning(check, detail + " (attendance still comes from the report API, later)", fix)


def _host_pool_finding(name: str, connection: Connection, needs_hosts: bool, pool: tuple[int, int]) -> Finding:
    check = f"{name}: host pool"
    if not needs_hosts:
        return _ok(check, f"not needed: {connection.provider} meetings need no licensed host account")
    instructors, with_accounts = pool
    if instructors == 0:
        return _ok(check, "no instructors yet (Cornerstone adds them with AddInstructor)")
    if with_accounts == 0:
        return _failure(check, f"none of the {instructors} active instructors has a {connection.provider} account: "
                               "sessions cannot be given a host",
                        "give them licensed accounts at the provider, then update them in Cornerstone (or see "
                        "the instructors on the connection's console page)")
    if with_accounts < instructors:
        return _warning(check, f"{with_accounts} of {instructors} active instructors have a {connection.provider} "
                               "account; the others' sessions cannot be hosted",
                        "give them licensed accounts at the provider, then update them in Cornerstone")
    return _ok(check, f"{with_accounts} active instructor(s), each with a {connection.provider} account")


async def check_connections(settings: Settings, keyring: Keyring, only: str | None,
                            seconds: float) -> list[Finding]:
    try:
        loaded = await asyncio.wait_for(_in_daemon_thread(lambda: _connections(settings, keyring, only)), seconds)
    except (TimeoutError, sa.exc.SQLAlchemyError) as exc:
        return [_failure("connections", f"cannot read the connections: {_reason(exc) or 'timed out'}",
                         "fix the database first")]
    if only is not None and not loaded:
        return [_failure(f"connection {only}", f"no connection named '{only}'",
                         "`viltbridge connection list` shows their names")]
    if not loaded:
        return [_warning("connections", "none yet", "create one with `viltbridge connection create NAME --provider "
                                                    "KIND`")]
    findings: list[Finding] = []
    clock_offsets: dict[str, float] = {}
    for name, item in loaded:
        if item.connection is None:
            findings.append(_failure(f"{name}: settings", item.problem,
                                     "set the key the settings were written with (see the secret key check)"))
            continue
        if item.connection.active:
            findings.append(_ok(f"{name}: active", f"active ({item.connection.provider})"))
        else:
            findings.append(_warning(f"{name}: active", "inactive: Cornerstone's calls are refused",
                                     f"`viltbridge connection activate {name}` when it should serve again"))
        provider_findings, clock_offset = await _provider_findings(name, item.connection, item.host_pool, seconds)
        findings.extend(provider_findings)
        if clock_offset is not None:
            clock_offsets[name] = clock_offset
    if clock_offsets:
        findings.append(_provider_clock_finding(clock_offsets))
    return findings


# --- all together -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What the checks need to know of the deployment besides its settings."""

    queue_url: str  # the job queue's URL as the server derives it (jobs.queue.queue_url)
    connection: str | None = None  # only this connection
    timeout: float = 10.0  # seconds, per check


async def _bounded(name: str, work: Callable[[], Finding], seconds: float) -> Finding:
    try:
        return await asyncio.wait_for(_in_daemon_thread(work), seconds)
    except TimeoutError:
        return _failure(name, f"no answer within {seconds:g} s", "check that the server it talks to runs and is "
                                                                 "reachable from here")


async def diagnose(settings: Settings, setup: Setup) -> list[Finding]:
    """Every check, in the order an operator fixes things: configuration, database, queue, clock, connections."""
    timeout = setup.timeout
    findings: list[Finding] = []
    if setup.connection is None:
        findings.append(await _bounded("secret key", lambda: check_keys(
            settings, lambda: repository.has_connections(settings.database_url)), timeout))
        findings += [check_public_url(settings), check_trusted_proxies(settings)]
        findings.append(await _bounded("database", lambda: check_database(settings), timeout))
        findings.append(await _bounded("job queue", lambda: check_queue(setup.queue_url, timeout), timeout))
        if settings.rate_limit_url:
            rate_limit_url = settings.rate_limit_url
            findings.append(await _bounded("rate-limit Redis",
                                           lambda: check_rate_limit_store(rate_limit_url, timeout), timeout))
        findings.append(await _bounded("clock", lambda: check_clock(settings), timeout))
    database = next((f for f in findings if f.check == "database"), None)
    if database is not None and database.status is Status.FAILURE:
        return findings  # the connections live in the database
    try:
        keyring = _keyring(settings)
    except KeyringError as exc:
        if setup.connection is not None:
            findings.append(_failure("secret key", str(exc), "see `viltbridge doctor` without a connection"))
        return findings
    findings += await check_connections(settings, keyring, setup.connection, timeout)
    return findings


def _keyring(settings: Settings) -> Keyring:
    """The keyring as configured, never creating a key file (the doctor only looks)."""
    return load_keyring(settings.secret_key, settings.key_file, may_create=False)


def as_json(findings: list[Finding]) -> dict[str, Any]:
    return {"ok": not failed(findings),
            "checks": [{"check": f.check, "status": str(f.status), "detail": f.detail, "fix": f.fix}
                       for f in findings]}
