"""`viltbridge serve | worker | migrate | keygen | connection … | jobs … | sync … | conformance` — the operator's
entry points."""

# No `from __future__ import annotations` here: typer reads every command's annotations to build the command tree on
# each start, and as strings it compiles and evaluates them twice per parameter (building the tree took ~45 ms that
# way, ~5 ms with the annotations evaluated once as the module is imported; typer's own import is ~60 ms).
import gc
import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from viltbridge.lean_typer import LeanTyper

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.orm import Session as OrmSession

    from viltbridge.config import Settings
    from viltbridge.security.crypto import Keyring

# `viltbridge --help` and the small commands start in under twice the time typer itself takes to import because this
# module imports only what typer needs to build the command tree; each command imports the modules it uses (the web app,
# SQLAlchemy, the providers, rich's console) when it runs, and LeanTyper steps around what typer would load for
# nothing. tests/test_cli_startup.py checks that `--help` and `keygen` load none of them.

app = LeanTyper(add_completion=False, pretty_exceptions_enable=False,
                help="viltbridge: a vILT connector for any provider.")
connection_app = LeanTyper(help="Create and manage connections (one per LMS integration).")
app.add_typer(connection_app, name="connection")
jobs_app = LeanTyper(help="Background jobs: what is queued, running, done or dead.")
app.add_typer(jobs_app, name="jobs")
attendance_app = LeanTyper(help="Attendance: policy, aliases, decisions, exports.")
app.add_typer(attendance_app, name="attendance")
user_app = LeanTyper(help="Console users: who may sign in to /console, with which roles.")
app.add_typer(user_app, name="user")
sync_app = LeanTyper(help="Do background work now instead of waiting for the workers.")
app.add_typer(sync_app, name="sync")


@cache
def _out() -> "Console":
    """Where results are printed. Made at first use: rich's console costs a third of typer's own import, and
    `keygen` or `--help` (drawn by typer's own console) never print through it."""
    from rich.console import Console

    return Console()


@cache
def _err() -> "Console":
    """Where errors and progress go; an error stays one line, easy to grep and to paste."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _table(*headers: str) -> "Table":
    from rich.table import Table

    return Table(*headers)


def _settings() -> "Settings":
    from viltbridge.config import Settings

    return Settings()


def _fail(message: str, code: int = 1) -> None:
    _err().print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@contextmanager
def _database(settings: "Settings") -> Iterator[tuple["OrmSession", "Keyring"]]:
    """A migrated database and the keyring; commits on success, rolls back and reports domain errors."""
    from sqlalchemy.orm import Session as OrmSession

    from viltbridge.bootstrap import open_keyring
    from viltbridge.core.errors import DomainError
    from viltbridge.providers.url_guard import UrlPolicy, guard_provider_urls
    from viltbridge.security.crypto import KeyringError
    from viltbridge.store import migrate as migrations
    from viltbridge.store.db import DatabaseTimeouts, sync_engine

    try:
        keyring = open_keyring(settings)
        migrations.upgrade(settings.database_url)
    except (KeyringError, ValueError) as exc:
        _fail(str(exc))
    engine = sync_engine(settings.database_url, DatabaseTimeouts.from_settings(settings))
    previous_url_policy = guard_provider_urls(UrlPolicy.from_settings(settings))  # provider URLs saved are checked
    try:
        with OrmSession(engine) as db, db.begin():
            yield db, keyring
    except DomainError as exc:
        _fail(exc.message)
    except KeyringError as exc:
        _fail(str(exc))
    finally:
        guard_provider_urls(previous_url_policy)
        engine.dispose()


def _public_url(settings: "Settings") -> str:
    return (settings.public_url or "http://127.0.0.1:8000").rstrip("/")


def _describe(row: Any, keyring: "Keyring", settings: "Settings") -> dict[str, Any]:
    """A connection as an admin may see it, with the Base URL to enter in the LMS. Without VILTBRIDGE_PUBLIC_URL
    the CLI cannot know where the server is reached, so that URL is `serve`'s default and flagged as a guess."""
    from viltbridge.app import connections

    details = connections.describe(row, keyring, settings.prefix or "/", _public_url(settings) + settings.prefix)
    details["base_url_is_guess"] = not settings.public_url
    return details


def _actor() -> str:
    """Who the audit log says made a change from the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"cli:uid-{os.getuid()}"


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Leave background work to other processes")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port (each runs its own job "
                                                   "threads unless --no-worker)")] = 1,
) -> None:
    """Apply migrations, then serve the LMS contract and the launch redirect (and background work, by default)."""
    import logging

    import uvicorn

    from viltbridge.metrics import prepare_multiprocess_dir
    from viltbridge.observability import configure_logging
    from viltbridge.security.crypto import KeyringError
    from viltbridge.store import migrate as migrations
    from viltbridge.web.app import create_app
    from viltbridge.web.http_protocol import ENVELOPE_HTTP_PROTOCOL

    settings = _settings()
    configure_logging(settings.log_level, settings.chosen_log_format)
    prepare_multiprocess_dir()  # before any process of this run records a metric
    try:
        migrations.upgrade(settings.database_url)
        application = create_app(settings, public_url=settings.public_url or f"http://{host}:{port}",
                                 run_worker=not no_worker, freeze_startup_objects=True)
    except (KeyringError, ValueError) as exc:
        _fail(str(exc))
    log = logging.getLogger("viltbridge.serve")  # log lines, not console text: one format (JSON too) on stderr
    if not settings.public_url and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without VILTBRIDGE_PUBLIC_URL: launch links will point at http://%s:%d, which "
                    "browsers elsewhere cannot reach. Set VILTBRIDGE_PUBLIC_URL to the address people use, e.g. "
                    "https://vilt.example.org.", host, host, port)
    log.info("viltbridge serving on http://%s:%d (LMS contract under '%s')%s", host, port, settings.prefix or "/",
             f" with {workers} processes" if workers > 1 else "")
    served: Any = application
    if workers > 1:
        # uvicorn starts each process from an import string; every process builds the same app from this
        # environment (the settings are read again there).
        os.environ[_SERVE_PUBLIC_URL] = settings.public_url or f"http://{host}:{port}"
        os.environ[_SERVE_RUN_WORKER] = "" if no_worker else "1"
        served = "viltbridge.cli:_server_process_app"
    uvicorn.run(served, factory=workers > 1, workers=workers if workers > 1 else None, host=host, port=port,
                access_log=access_log, log_level="warning", server_header=False, http=ENVELOPE_HTTP_PROTOCOL,
                log_config=None,  # uvicorn's lines go through configure_logging's handler, in its format
                # One rule for who may say where a request came from: the proxies in VILTBRIDGE_TRUSTED_PROXIES
                # (uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1, and the sign-in throttle with it).
                proxy_headers=bool(settings.trusted_proxies.strip()),
                forwarded_allow_ips=settings.trusted_proxies.strip() or None)


_SERVE_PUBLIC_URL = "_VILTBRIDGE_SERVE_PUBLIC_URL"
_SERVE_RUN_WORKER = "_VILTBRIDGE_SERVE_RUN_WORKER"


def _server_process_app() -> Any:
    """The application in each process of `serve --workers N`."""
    from viltbridge.observability import configure_logging
    from viltbridge.web.app import create_app

    settings = _settings()
    configure_logging(settings.log_level, settings.chosen_log_format)
    return create_app(settings, public_url=os.environ[_SERVE_PUBLIC_URL],
                      run_worker=bool(os.environ[_SERVE_RUN_WORKER]), freeze_startup_objects=True)


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option(help="Job threads (default VILTBRIDGE_WORKER_THREADS)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve this process's metrics (all of them with "
                                                          "PROMETHEUS_MULTIPROC_DIR) on 127.0.0.1:PORT/metrics, "
                                                          "for a host without `serve`")] = None,
) -> None:
    """Run background jobs only (scale-out): as many of these as you like, next to `serve --no-worker`."""
    from viltbridge.bootstrap import run_worker
    from viltbridge.metrics import prepare_multiprocess_dir, process_exiting, serve_on_localhost
    from viltbridge.observability import configure_logging
    from viltbridge.security.crypto import KeyringError
    from viltbridge.store import migrate as migrations

    settings = _settings()
    configure_logging(settings.log_level, settings.chosen_log_format)
    prepare_multiprocess_dir()
    if metrics_port is not None:
        serve_on_localhost(metrics_port)
    try:
        current = migrations.current_revision(settings.database_url)
        if current != migrations.head_revision():
            _fail(f"the database is at revision {current}, not {migrations.head_revision()}: run `viltbridge migrate` "
                  "(or start `viltbridge serve`, which migrates) before starting workers")
        run_worker(settings, threads or settings.worker_threads)
    except (KeyringError, ValueError) as exc:
        _fail(str(exc))
    finally:
        process_exiting()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from viltbridge.store import migrate as migrations

    settings = _settings()
    try:
        migrations.upgrade(settings.database_url)
    except ValueError as exc:
        _fail(str(exc))
    _err().print(f"database at revision {migrations.current_revision(settings.database_url)}")


@app.command()
def doctor(
    connection: Annotated[str | None, typer.Argument(help="Check only this connection")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, max=300, help="Seconds each check may take")] = 10.0,
) -> None:
    """Check the configuration, database, queue, clock and each connection's provider; exit 1 if anything fails."""
    import asyncio

    from rich.markup import escape

    from viltbridge.app import doctor as checks
    from viltbridge.jobs.queue import queue_url
    from viltbridge.observability import configure_logging
    from viltbridge.providers.url_guard import UrlPolicy, guard_provider_urls

    settings = _settings()
    configure_logging(settings.log_level, settings.chosen_log_format)  # log lines (retries) on stderr, not in --json
    try:
        where_queued = queue_url(settings)
    except ValueError as exc:
        _fail(str(exc))
    previous_url_policy = guard_provider_urls(UrlPolicy.from_settings(settings))  # as the server holds them
    try:
        findings = asyncio.run(checks.diagnose(settings, checks.Setup(where_queued, connection, timeout)))
    finally:
        guard_provider_urls(previous_url_policy)
    if as_json:
        _print_json(checks.as_json(findings))
    else:
        marks = {checks.Status.OK: "[green]ok[/green]", checks.Status.WARNING: "[yellow]warning[/yellow]",
                 checks.Status.FAILURE: "[red]FAILURE[/red]"}
        from rich.table import Table

        table = Table()
        table.add_column("check", no_wrap=True)  # names are what people grep for and compare between runs
        table.add_column("status", no_wrap=True)
        table.add_column("what was seen")
        table.add_column("how to fix it")
        for finding in findings:
            table.add_row(escape(finding.check), marks[finding.status], escape(finding.detail), escape(finding.fix))
        _out().print(table)
        counts = {status: sum(f.status is status for f in findings) for status in checks.Status}
        _out().print(f"{counts[checks.Status.OK]} ok, {counts[checks.Status.WARNING]} warning(s), "
                     f"{counts[checks.Status.FAILURE]} failure(s)")
    if checks.failed(findings):
        raise typer.Exit(1)


@app.command()
def backup(
    path: Annotated[str, typer.Argument(help="The file to write, e.g. /var/backups/viltbridge-2026-03-02.db")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists")] = False,
) -> None:
    """Copy the embedded SQLite database while the server runs (consistent; PostgreSQL: use pg_dump)."""
    from pathlib import Path

    from rich.markup import escape

    from viltbridge.store.backup import BackupRefused, backup_sqlite

    settings = _settings()
    try:
        size = backup_sqlite(settings.database_url, Path(path), overwrite=force)
    except BackupRefused as exc:
        _fail(str(exc))
    _out().print(f"database copied to {path} ({size:,} bytes)", markup=False, highlight=False)
    key = "VILTBRIDGE_SECRET_KEY" if settings.secret_key else f"the key file {escape(str(settings.key_file.resolve()))}"
    _err().print(f"[yellow]Remember:[/yellow] back up {key} separately (and keep it apart from this copy): without it "
                 "the connections' encrypted settings in the copy cannot be read.", markup=True, highlight=False)


@app.command()
def keygen() -> None:
    """Print a new secret key; prepend it to VILTBRIDGE_SECRET_KEY (comma-separated) to rotate keys."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode("ascii"))


@connection_app.command("create")
def connection_create(
    name: Annotated[str, typer.Argument(help="Short name, e.g. acme-zoom")],
    provider: Annotated[str, typer.Option("--provider", help="Provider kind, e.g. link or zoom")] = "link",
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value: a provider setting or option")] = None,
    username: Annotated[str | None, typer.Option(help="LMS username (default: the name)")] = None,
    password: Annotated[str | None, typer.Option(help="Choose the LMS secret instead of a generated one")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Activate an integration: prints what the admin enters in the LMS, including the secret, once."""
    from viltbridge.app import connections

    settings = _settings()
    with _database(settings) as (db, keyring):
        created = connections.create(db, keyring, name, provider, connections.parse_pairs(set_ or []),
                                     username=username, password=password, actor=_actor())
        details = _describe(created.row, keyring, settings)
    details["password"] = created.password
    if as_json:
        _print_json(details)
        return
    _out().print(f"[green]Connection '{name}' created[/green] (provider: {provider}). Enter these in Cornerstone Edge:")
    guess = (" (a guess: set VILTBRIDGE_PUBLIC_URL to the address Cornerstone reaches this server at)"
             if details["base_url_is_guess"] else "")
    _out().print(f"  Base URL : {details['base_url']}{guess}", markup=False, soft_wrap=True)
    _out().print(f"  Username : {details['username']}")
    _out().print(f"  Password : {created.password}")
    _out().print("[yellow]The password is shown only now; viltbridge keeps only a digest of it.[/yellow]")


@connection_app.command("list")
def connection_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """All connections."""
    from viltbridge.store import repository

    settings = _settings()
    with _database(settings) as (db, keyring):
        rows = [_describe(row, keyring, settings) for row in repository.all_connection_rows(db)]
    if as_json:
        _print_json(rows)
        return
    table = _table("name", "provider", "active", "username", "launch window", "auto-cancel")
    for row in rows:
        table.add_row(row["name"], row["provider"], "yes" if row["active"] else "no", row["username"],
                      f"{row['launch_window_minutes']} min", "on" if row["automatic_cancellation"] else "off")
    _out().print(table)


@connection_app.command("show")
def connection_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One connection's settings (secrets shown as ***)."""
    from viltbridge.app import connections

    settings = _settings()
    with _database(settings) as (db, keyring):
        details = _describe(connections.require(db, name), keyring, settings)
    if as_json:
        _print_json(details)
        return
    for key, value in details.items():
        _out().print(f"{key:24} {value}")


@connection_app.command("set")
def connection_set(
    name: str,
    pairs: Annotated[list[str], typer.Argument(help="key=value ...; an empty value removes a provider setting")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change options (automatic_cancellation, extended_options, launch_window_minutes) or provider settings."""
    from viltbridge.app import connections

    settings = _settings()
    with _database(settings) as (db, keyring):
        row = connections.change(db, keyring, name, connections.parse_pairs(pairs), actor=_actor())
        details = _describe(row, keyring, settings)
    if as_json:
        _print_json(details)
    else:
        _out().print(f"Connection '{name}' updated.")


def _set_active(name: str, active: bool, as_json: bool) -> None:
    from viltbridge.app import connections

    settings = _settings()
    with _database(settings) as (db, keyring):
        row = connections.set_active(db, name, active, actor=_actor())
        details = _describe(row, keyring, settings)
    if as_json:
        _print_json(details)
    elif active:
        _out().print(f"Connection '{name}' is active: the LMS can use it again.")
    else:
        _out().print(f"Connection '{name}' is deactivated: its data is kept; every LMS call for it now gets a 403.")


@connection_app.command("deactivate")
def connection_deactivate(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keep all data but refuse every LMS call for this connection."""
    _set_active(name, False, as_json)


@connection_app.command("activate")
def connection_activate(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Let the LMS use a deactivated connection again."""
    _set_active(name, True, as_json)


@connection_app.command("rotate-secret")
def connection_rotate_secret(
    name: str,
    password: Annotated[str | None, typer.Option(help="Choose the new secret")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replace the LMS secret; the old one stops working at once. Prints the new one, once."""
    from viltbridge.app import connections

    settings = _settings()
    with _database(settings) as (db, _keyring):
        created = connections.rotate_secret(db, name, password, actor=_actor())
        username = created.row.username
    if as_json:
        _print_json({"name": name, "username": username, "password": created.password})
    else:
        _out().print(f"New password for '{name}' (username {username}): {created.password}")


# --- console users ---------------------------------------------------------------------------------------


RolesOption = Annotated[list[str], typer.Option("--role", help="integrations-manage, vendors-create, "
                                                "vendors-update, vendors-view, sessions-cancel, roster-manage, "
                                                "instructor (repeat for several)")]


def _password_from_stdin(enabled: bool) -> str | None:
    """A chosen password comes on stdin, never as an argument (argv is visible to every user of the machine)."""
    if not enabled:
        return None
    return sys.stdin.readline().rstrip("\n")


def _user_json(row: Any) -> dict[str, Any]:
    return {"email": row.email, "display_name": row.display_name, "roles": list(row.roles),
            "time_zone": row.time_zone, "active": row.active,
            "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None}


@user_app.command("create")
def user_create(
    email: str,
    role: RolesOption,
    name: Annotated[str | None, typer.Option(help="Display name (default: the email's local part)")] = None,
    time_zone: Annotated[str, typer.Option(help="IANA zone the console shows times in")] = "UTC",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Let a person sign in to the console. Prints a generated password, once, unless one comes on stdin."""
    from viltbridge.app import console_users

    chosen = _password_from_stdin(password_stdin)
    with _database(_settings()) as (db, _keyring):
        row, password = console_users.create(db, datetime.now(UTC), _actor(), email, role, display_name=name,
                                             password=chosen, time_zone=time_zone)
        details = _user_json(row)
    if chosen is None:
        details["password"] = password
    if as_json:
        _print_json(details)
    else:
        _out().print(f"Console user {details['email']} created with role(s) {', '.join(details['roles'])}.")
        if chosen is None:
            _out().print(f"Password (shown once): {password}")


@user_app.command("list")
def user_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every console user, their roles and last sign-in."""
    from viltbridge.app import console_users

    with _database(_settings()) as (db, _keyring):
        rows = [_user_json(row) for row in console_users.listing(db)]
    if as_json:
        _print_json(rows)
        return
    table = _table("email", "name", "roles", "time zone", "active", "last sign-in")
    for row in rows:
        table.add_row(row["email"], row["display_name"], ", ".join(row["roles"]), row["time_zone"],
                      "yes" if row["active"] else "no", row["last_login_at"] or "never")
    _out().print(table)


@user_app.command("roles")
def user_roles(email: str, role: RolesOption) -> None:
    """Replace a user's roles."""
    from viltbridge.app import console_users

    with _database(_settings()) as (db, _keyring):
        row = console_users.set_roles(db, datetime.now(UTC), _actor(), email, role)
        _out().print(f"{row.email} now has role(s) {', '.join(row.roles)}.")


@user_app.command("password")
def user_password(
    email: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
) -> None:
    """Set a new password (generated unless given on stdin); the user is signed out everywhere."""
    from viltbridge.app import console_users

    chosen = _password_from_stdin(password_stdin)
    with _database(_settings()) as (db, _keyring):
        password = console_users.set_password(db, datetime.now(UTC), _actor(), email, chosen)
    _out().print(f"Password changed for {email}; every browser signed in as them must sign in again.")
    if chosen is None:
        _out().print(f"New password (shown once): {password}")


@user_app.command("deactivate")
def user_deactivate(email: str) -> None:
    """Stop a user signing in (signs them out everywhere); their audit history stays."""
    from viltbridge.app import console_users

    with _database(_settings()) as (db, _keyring):
        console_users.set_active(db, datetime.now(UTC), _actor(), email, False)
    _out().print(f"{email} can no longer sign in to the console.")


@user_app.command("activate")
def user_activate(email: str) -> None:
    """Let a deactivated user sign in again."""
    from viltbridge.app import console_users

    with _database(_settings()) as (db, _keyring):
        console_users.set_active(db, datetime.now(UTC), _actor(), email, True)
    _out().print(f"{email} can sign in to the console again.")


@app.command()
def conformance(
    base_url: Annotated[str | None, typer.Argument(
        help="The connector's base URL, as entered in Cornerstone Edge (not needed with --list)")] = None,
    username: Annotated[str | None, typer.Option(envvar="VILTBRIDGE_CONFORMANCE_USERNAME",
                                                 help="HTTP Basic username")] = None,
    password: Annotated[str | None, typer.Option(envvar="VILTBRIDGE_CONFORMANCE_PASSWORD",
                                                 help="HTTP Basic password (better in the environment)")] = None,
    client_id: Annotated[str | None, typer.Option(envvar="VILTBRIDGE_CONFORMANCE_CLIENT_ID",
                                                  help="OAuth client id (instead of Basic)")] = None,
    client_secret: Annotated[str | None, typer.Option(envvar="VILTBRIDGE_CONFORMANCE_CLIENT_SECRET",
                                                      help="OAuth client secret")] = None,
    instructor: Annotated[list[str] | None, typer.Option(help="Instructor email (repeat; the first hosts)")] = None,
    learner: Annotated[list[str] | None, typer.Option(help="Learner email (repeat; three for attendance)")] = None,
    only: Annotated[list[str] | None, typer.Option(
        help="Run only these case ids or prefixes (repeat, or comma-separate)")] = None,
    skip: Annotated[list[str] | None, typer.Option(help="Skip these case ids or prefixes")] = None,
    extras: Annotated[bool, typer.Option("--extras", help="Also check viltbridge's own extras")] = False,
    provider_scenario: Annotated[str | None, typer.Option(
        help="A viltbridge provider simulator's base URL that plays the class, or 'clicks'")] = None,
    attendance_timeout: Annotated[float, typer.Option(help="Seconds to wait for attendance after the class")] = 60,
    junit: Annotated[str | None, typer.Option(help="Write JUnit XML here")] = None,
    json_file: Annotated[str | None, typer.Option("--json", help="Write the results as JSON here")] = None,
    list_cases: Annotated[bool, typer.Option("--list", help="List the cases and exit")] = False,
) -> None:
    """Play Cornerstone against a vILT connector (ours or anyone's) and report which contract cases pass.
    Exit code 0 only when every selected case passed."""
    from viltbridge.conformance import checks, report
    from viltbridge.conformance.driver import LmsDriver, Target
    from viltbridge.conformance.scenario import scenario_for

    def patterns(values: list[str] | None) -> list[str]:
        return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]

    wrong = checks.unknown_patterns(patterns(only) + patterns(skip))
    if wrong:
        _fail(f"no case matches {', '.join(wrong)}; `viltbridge conformance --list` lists them")
    available = {"scenario"} if provider_scenario else set()
    available |= {"oauth"} if client_id and client_secret else set()
    selected = checks.select(checks.CASES, patterns(only), patterns(skip), extras=extras, available=available)
    if list_cases:
        for item in selected:
            _out().print(f"{item.id:34} {item.title} [{', '.join(sorted(item.tags))}]", soft_wrap=True, markup=False,
                      highlight=False)
        return
    if not base_url:
        _fail("give the connector's base URL, e.g. `viltbridge conformance https://vilt.example.org --username "
              "acme`; `viltbridge conformance --list` lists the cases")
    try:
        target = Target(base_url, username, password, client_id, client_secret)
        scenario = scenario_for(provider_scenario)
    except ValueError as exc:
        _fail(str(exc))
    learners = learner or ["learner.one@example.com", "learner.two@example.com", "learner.three@example.com"]
    with LmsDriver(target) as driver:
        ctx = checks.Context(driver, instructor or ["instructor@example.com"], learners, scenario=scenario,
                             attendance_timeout=attendance_timeout)
        marks = {"passed": "[green]pass[/green]", "failed": "[red]FAIL[/red]", "skipped": "[yellow]skip[/yellow]"}
        results = report.run_cases(selected, ctx, lambda r: _err().print(f"{marks[r.outcome]} {r.id}"))
    if scenario is not None:
        scenario.close()
    report.print_table(results, _out())
    if junit:
        report.write_junit(results, base_url, junit)
    if json_file:
        report.write_json(results, base_url, json_file)
    if not report.all_passed(results):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except Exception as exc:
        explanation = _unreachable_database(exc)
        if explanation is None:
            raise
        from rich.markup import escape

        _err().print(f"[red]error:[/red] {escape(explanation)}")
        raise SystemExit(DATABASE_UNREACHABLE_EXIT) from None
    finally:
        # The process exits next, and the interpreter's last garbage collections over every object typer and rich
        # made took a quarter of `--help`'s time: frozen, they are left to the exit. Objects are still freed as
        # their references go, and what a command opens it closes itself (with-blocks, engine.dispose).
        gc.freeze()


DATABASE_UNREACHABLE_EXIT = 2


def _unreachable_database(exc: BaseException) -> str | None:
    """Two lines for an error saying the configured database cannot be reached or opened (where, the driver's
    reason, what to check), instead of a traceback of 150 lines that says the same less clearly; None for any other
    error. Never the password of the URL."""
    if "sqlalchemy" not in sys.modules:
        return None  # nothing has opened the database
    from pathlib import Path

    import sqlalchemy as sa

    from viltbridge.store.db import database_unreachable

    if not isinstance(exc, sa.exc.DBAPIError) or not database_unreachable(exc):
        return None
    url = sa.engine.make_url(_settings().database_url)
    reason = (str(exc.orig) if exc.orig is not None else str(exc)).strip().splitlines()[0:1] or ["no reason given"]
    driver_reason = reason[0].replace(url.password, "***") if url.password else reason[0]
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "").resolve()
        return (f"cannot open the SQLite database {path}: {driver_reason}\n"
                f"Check VILTBRIDGE_DATABASE_URL, and that the directory {path.parent} exists and this user may "
                "write to it.")
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return (f"cannot reach the database at {where} (database {url.database!r}, user {url.username!r}): "
            f"{driver_reason}\n"
            "Check VILTBRIDGE_DATABASE_URL, that the database server is running and accepts connections from this "
            "machine, and the user's password.")


# --- jobs ------------------------------------------------------------------------------------------------------


def _jobs_table(rows: list[Any]) -> "Table":
    table = _table("id", "kind", "state", "attempts", "run after (UTC)", "session", "last error / note")
    for job in rows:
        table.add_row(str(job.id), job.kind, job.state, f"{job.attempts}/{job.max_attempts}",
                      f"{job.run_after:%Y-%m-%d %H:%M:%S}", str(job.session_id or "-"), (job.last_error or "")[:80])
    return table


def _job_json(job: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in asdict(job).items()}


@jobs_app.command("list")
def jobs_list(
    state: Annotated[list[str] | None, typer.Option(help="queued, running, done or dead (repeatable)")] = None,
    kind: Annotated[str | None, typer.Option(help="e.g. meeting.sync, attendance.collect")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The newest jobs first."""
    from viltbridge.store import job_ledger

    wrong = sorted(set(state or ()) - set(job_ledger.STATES))
    if wrong:
        _fail(f"unknown state {', '.join(wrong)}; use {', '.join(job_ledger.STATES)}")
    with _database(_settings()) as (db, _):
        rows = job_ledger.listing(db, states=state or (), kind=kind, limit=limit)
    if as_json:
        _print_json([_job_json(job) for job in rows])
        return
    _out().print(_jobs_table(rows))


@jobs_app.command("dead")
def jobs_dead(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Jobs that gave up, with the reason; `viltbridge jobs retry ID` tries one again."""
    jobs_list(state=["dead"], kind=None, limit=500, as_json=as_json)


@jobs_app.command("retry")
def jobs_retry(
    job_ids: Annotated[list[int] | None, typer.Argument(help="Job ids (see `viltbridge jobs dead`)")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead job")] = False,
) -> None:
    """Queue dead (or done) jobs again with fresh attempts, and hand them to the workers."""
    from datetime import UTC, datetime

    from viltbridge.jobs.queue import JobQueue, queue_url
    from viltbridge.store import job_ledger

    if not job_ids and not all_dead:
        _fail("name the jobs to retry (ids from `viltbridge jobs dead`) or pass --all-dead")
    settings = _settings()
    now = datetime.now(UTC)
    with _database(settings) as (db, _):
        ids = list(job_ids or []) + ([job.id for job in job_ledger.listing(db, states=["dead"], limit=10_000)]
                                     if all_dead else [])
        missing = [job_id for job_id in ids if job_ledger.get(db, job_id) is None]
        if missing:
            _fail(f"no job {', '.join(map(str, missing))}; `viltbridge jobs list` shows them")
        retried = [job_id for job_id in ids if job_ledger.retry(db, job_id, now)]
    queue = JobQueue(queue_url(settings))
    queue.kick(retried)
    queue.close()
    skipped = sorted(set(ids) - set(retried))
    _out().print(f"queued again: {', '.join(map(str, retried)) or 'none'}"
              + (f"; left alone (queued or running already): {', '.join(map(str, skipped))}" if skipped else ""))


@sync_app.command("attendance")
def sync_attendance(
    connection: Annotated[str | None, typer.Option(help="Only this connection (default: all)")] = None,
    since: Annotated[str | None, typer.Option(help="Parts that ended from this UTC date or time on, e.g. "
                                                   "2026-03-01 (default: 7 days ago)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Collect attendance now for parts that ended, with progress; not-final ones stay queued for the workers."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from rich.progress import Progress

    from viltbridge.bootstrap import app_context
    from viltbridge.jobs.runner import JobRunner
    from viltbridge.jobs.sync import sync_attendance as run_sync

    settings = _settings()
    try:
        start = (datetime.fromisoformat(since) if since else datetime.now(UTC) - timedelta(days=7))
    except ValueError:
        _fail(f"--since {since!r} is not a date or time; write it like 2026-03-01 or 2026-03-01T09:00")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    with _database(settings) as (_, keyring):
        pass  # migrated, and the keyring opens

    async def run() -> list[Any]:
        ctx = app_context(settings, keyring=keyring, public_url=_public_url(settings))
        try:
            with Progress(console=_err(), transient=True) as progress:
                task = progress.add_task("collecting attendance", total=None)
                return await run_sync(JobRunner(ctx, "cli"), connection, start,
                                      lambda done, total: progress.update(task, completed=done, total=total))
        finally:
            await ctx.aclose()

    try:
        results = asyncio.run(run())
    except LookupError as exc:
        _fail(str(exc))
    if as_json:
        _print_json([vars(result) for result in results])
        return
    table = _table("connection", "session", "job", "note")
    for result in results:
        table.add_row(result.connection, result.session, result.state, result.note[:100])
    _out().print(table)
    _out().print(f"{len(results)} part(s) ended since {start:%Y-%m-%d %H:%M} UTC")


# --- attendance ------------------------------------------------------------------------------------------------


@attendance_app.command("policy")
def attendance_policy(
    connection: str,
    pairs: Annotated[list[str] | None, typer.Option("--set", help="k=v: min_percent, min_minutes, grace_minutes, "
                                                    "cap_at_end, count_waiting_room, parts (all|any|per_part)")] = None,
    session: Annotated[str | None, typer.Option(help="Override for this session only")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the defaults (or the connection's policy)")] = False,
) -> None:
    """Show or change when a learner counts as attended; the next GetAttendance recomputes from the ledger."""
    from viltbridge.app import attendance_admin, connections

    with _database(_settings()) as (db, _):
        if pairs or reset:
            changes = attendance_admin.parse_policy_pairs(connections.parse_pairs(pairs or []))
            policy = attendance_admin.set_policy(db, connection, changes, session=session, reset=reset)
        else:
            policy = attendance_admin.policy_of(db, connection, session)
    where = f"session {session} of {connection}" if session else connection
    _out().print(f"{where}: {policy.describe()}")


@attendance_app.command("alias")
def attendance_alias(
    connection: str,
    provider_email: Annotated[str | None, typer.Argument(help="The email the provider reports")] = None,
    lms_email: Annotated[str | None, typer.Argument(help="The LMS email it stands for")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias of PROVIDER_EMAIL")] = False,
) -> None:
    """List the connection's aliases, add one (PROVIDER_EMAIL LMS_EMAIL), or --remove one."""
    from viltbridge.app import attendance_admin

    with _database(_settings()) as (db, _):
        if remove:
            if not provider_email:
                _fail("name the provider email whose alias to remove")
            attendance_admin.remove_alias(db, connection, provider_email or "")
        elif provider_email:
            if not lms_email:
                _fail("give the LMS email the provider email stands for: attendance alias C PROVIDER LMS")
            attendance_admin.set_alias(db, connection, provider_email, lms_email or "")
        table = attendance_admin.aliases(db, connection)
    for source, target in sorted(table.items()):
        _out().print(f"{source} -> {target}")
    if not table:
        _out().print("no aliases")


@attendance_app.command("export")
def attendance_export(
    connection: Annotated[str | None, typer.Option(help="Only this connection")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session (needs --connection)")] = None,
    ended_from: Annotated[str | None, typer.Option("--from", help="Parts that ended on or after (UTC date)")] = None,
    ended_until: Annotated[str | None, typer.Option("--until", help="Parts that ended before (UTC date)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    by: Annotated[str, typer.Option("--by", help="part (one row per learner and part) or session (parts sharing "
                                               "an LoId combined by the policy's parts rule)")] = "part",
    output: Annotated[str | None, typer.Option(help="File to write (default: standard output)")] = None,
) -> None:
    """The latest decision per learner and part (or multi-part session), with its explanation (CSV safe to open in a
    spreadsheet)."""
    from datetime import UTC, datetime
    from pathlib import Path

    from viltbridge.app import attendance_admin
    from viltbridge.core.errors import DomainError

    if fmt not in ("csv", "json"):
        _fail(f"--format {fmt!r}: use csv or json")
    if by not in ("part", "session"):
        _fail(f"--by {by!r}: use part or session")

    def moment(text: str | None, option: str) -> datetime | None:
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            _fail(f"{option} {text!r} is not a date or time; write it like 2026-03-01 or 2026-03-01T09:00")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    wanted = attendance_admin.ExportFilter(connection, session, moment(ended_from, "--from"),
                                           moment(ended_until, "--until"))
    with _database(_settings()) as (db, _):
        try:
            rows = (attendance_admin.export_rows(db, wanted) if by == "part"
                    else attendance_admin.export_session_rows(db, wanted))
        except DomainError as exc:
            _fail(exc.message)
    fields = attendance_admin.EXPORT_FIELDS if by == "part" else attendance_admin.SESSION_EXPORT_FIELDS
    text = attendance_admin.to_csv(rows, fields) if fmt == "csv" else attendance_admin.to_json(rows)
    if output:
        Path(output).write_text(text, encoding="utf-8", newline="")
        _err().print(f"{len(rows)} row(s) written to {output}")
    else:
        sys.stdout.write(text)
