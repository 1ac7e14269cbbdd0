"""Console users: create, sign in (with lockout), change roles and passwords, deactivate; and what each user
changes on their own account page (time zone, password, signing out every browser).

Used by the CLI (`viltbridge user …`) and the console; sync, over a SQLAlchemy Session. Every change is audited.
"""

from __future__ import annotations

import math
import secrets
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.emails import checked_email, normalize_email
from viltbridge.core.errors import InvalidInput, NotFound
from viltbridge.core.permissions import ConsoleRole, Permission, parse_roles, permissions_of
from viltbridge.security.crypto import MIN_PASSWORD_LENGTH, UNKNOWN_USER_HASH, hash_password, password_matches
from viltbridge.store import audit
from viltbridge.store.tables import ConsoleSignOutRow, ConsoleUserRow

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

# The one answer to every refused sign-in with a wrong password, an unknown email or a locked account: telling them
# apart would tell whoever tries which emails have accounts. It names the lockout, so a person who is sure of their
# password knows what to do.
SIGN_IN_REFUSED = (f"Wrong email or password. After {MAX_FAILED_LOGINS} wrong passwords in a row an account is "
                   f"locked for {int(LOCKOUT.total_seconds() // 60)} minutes, even for the right password: if you "
                   "are sure of yours, wait that long, or ask an administrator to set a new one.")


@dataclass(frozen=True)
class ConsoleUser:
    """A signed-in person as the console sees them."""

    id: int
    email: str
    display_name: str
    roles: tuple[ConsoleRole, ...]
    time_zone: str
    session_version: int

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.roles)

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


def as_user(row: ConsoleUserRow) -> ConsoleUser:
    return ConsoleUser(id=row.id, email=row.email, display_name=row.display_name,
                       roles=tuple(ConsoleRole(role) for role in row.roles), time_zone=row.time_zone,
                       session_version=row.session_version)


def _snapshot(row: ConsoleUserRow) -> dict[str, object]:
    return {"email": row.email, "display_name": row.display_name, "roles": list(row.roles),
            "time_zone": row.time_zone, "active": row.active}


def checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters (a phrase of "
                           "a few words is easiest to remember).")
    return password


class FieldError(InvalidInput):
    """Bad input in one field of a form: the page shows the message next to that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone this server knows, for the account page's select."""
    return tuple(sorted(zoneinfo.available_timezones()))


def _checked_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Unknown time zone '{name}'; use an IANA name such as Europe/Berlin or "
                           "America/New_York.") from None
    return name


def create(db: OrmSession, now: datetime, actor: str, email: str, roles: list[str], *,
           display_name: str | None = None, password: str | None = None,
           time_zone: str = "UTC") -> tuple[ConsoleUserRow, str]:
    """A new user and their password (generated when not given, to be handed over once)."""
    address = checked_email(email, field="email")
    try:
        chosen_roles = parse_roles(roles)
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    if db.scalar(sa.select(ConsoleUserRow.id).where(ConsoleUserRow.email == address)) is not None:
        raise InvalidInput(f"There is already a console user {address}; change their roles with "
                           f"`viltbridge user roles {address} ...`.")
    secret = checked_password(password) if password is not None else secrets.token_urlsafe(15)
    row = ConsoleUserRow(email=address, display_name=(display_name or address.split("@")[0]).strip()[:200],
                         password_hash=hash_password(secret), roles=[role.value for role in chosen_roles],
                         time_zone=_checked_zone(time_zone), active=True, session_version=1, failed_logins=0,
                         created_at=now)
    db.add(row)
    db.flush()
    audit.record(db, now, actor, "user.create", f"user:{address}", after=_snapshot(row))
    return row, secret


def require(db: OrmSession, email: str) -> ConsoleUserRow:
    row = db.scalar(sa.select(ConsoleUserRow).where(ConsoleUserRow.email == normalize_email(email)))
    if row is None:
        raise NotFound(f"There is no console user {email}; create one with `viltbridge user create`.")
    return row


def get(db: OrmSession, user_id: int) -> ConsoleUserRow | None:
    return db.get(ConsoleUserRow, user_id)


def listing(db: OrmSession) -> list[ConsoleUserRow]:
    return list(db.scalars(sa.select(ConsoleUserRow).order_by(ConsoleUserRow.email)))


@dataclass(frozen=True)
class SignIn:
    """The outcome of one attempt: the user, or why not (safe to show: it never says whether the email exists)."""

    user: ConsoleUser | None
    refusal: str | None = None
    why: str | None = None  # for the server's log only: what the refusal does not tell the person


def sign_in(db: OrmSession, now: datetime, email: str, password: str) -> SignIn:
    """A refusal is an answer, not an exception: the failure count it adds must be committed. After
    MAX_FAILED_LOGINS wrong passwords in a row the account is locked for LOCKOUT, even for the right password, so
    guessing costs an attacker a quarter of an hour per five tries."""
    row = db.scalar(sa.select(ConsoleUserRow).where(ConsoleUserRow.email == normalize_email(email)))
    # Every refusal below costs one hash check and reads SIGN_IN_REFUSED: neither the time nor the text may tell an
    # unknown email from a known one, locked or not.
    if row is None:
        password_matches(password, UNKNOWN_USER_HASH)
        return SignIn(None, SIGN_IN_REFUSED, "no such user")
    right = password_matches(password, row.password_hash)
    if row.locked_until is not None and row.locked_until > now:
        minutes = max(1, math.ceil((row.locked_until - now).total_seconds() / 60))
        return SignIn(None, SIGN_IN_REFUSED, f"locked for {minutes} more minute(s)")
    if not right:
        row.failed_logins += 1
        if row.failed_logins >= MAX_FAILED_LOGINS:
            row.locked_until, row.failed_logins = now + LOCKOUT, 0
            audit.record(db, now, row.email, "user.locked", f"user:{row.email}",
                         after={"locked_until": row.locked_until.isoformat()})
        return SignIn(None, SIGN_IN_REFUSED, "wrong password")
    if not row.active:
        return SignIn(None, "This account is deactivated. Ask an administrator.", "deactivated")
    row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
    return SignIn(as_user(row))


def signed_in_user(db: OrmSession, user_id: int, session_version: object, nonce: str) -> ConsoleUser | None:
    """The user a session cookie (already verified as ours) speaks for, or None: a deactivated user, a session
    version bumped since (new password, deactivation), or this session signed out."""
    row = db.get(ConsoleUserRow, user_id)
    if row is None or not row.active or row.session_version != session_version:
        return None
    if db.get(ConsoleSignOutRow, nonce) is not None:
        return None
    return as_user(row)


def sign_out(db: OrmSession, now: datetime, user_id: int, nonce: str, session_lifetime: timedelta) -> None:
    """This session's cookie opens nothing from now on; the user's other browsers stay signed in. Rows of sessions
    whose cookies have expired anyway go at the same time."""
    db.execute(sa.delete(ConsoleSignOutRow).where(ConsoleSignOutRow.expires_at < now))
    if db.get(ConsoleSignOutRow, nonce) is None:
        db.add(ConsoleSignOutRow(nonce=nonce, user_id=user_id, expires_at=now + session_lifetime))


def set_roles(db: OrmSession, now: datetime, actor: str, email: str, roles: list[str]) -> ConsoleUserRow:
    row = require(db, email)
    try:
        chosen = parse_roles(roles)
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    before = _snapshot(row)
    row.roles = [role.value for role in chosen]
    audit.record(db, now, actor, "user.roles", f"user:{row.email}", before=before, after=_snapshot(row))
    return row


def set_password(db: OrmSession, now: datetime, actor: str, email: str, password: str | None = None) -> str:
    """A new password (generated when not given); every browser signed in as the user is signed out."""
    row = require(db, email)
    secret = checked_password(password) if password is not None else secrets.token_urlsafe(15)
    row.password_hash, row.session_version = hash_password(secret), row.session_version + 1
    row.failed_logins, row.locked_until = 0, None
    audit.record(db, now, actor, "user.password", f"user:{row.email}", after={"browsers": "all signed out"})
    return secret


def set_active(db: OrmSession, now: datetime, actor: str, email: str, active: bool) -> ConsoleUserRow:
    row = require(db, email)
    before = _snapshot(row)
    row.active = active
    if not active:
        row.session_version += 1
    audit.record(db, now, actor, "user.activate" if active else "user.deactivate", f"user:{row.email}",
                 before=before, after=_snapshot(row))
    return row


def _own(db: OrmSession, user_id: int) -> ConsoleUserRow:
    row = db.get(ConsoleUserRow, user_id)
    if row is None or not row.active:
        raise NotFound("Your account no longer exists or was deactivated; ask an administrator.")
    return row


def set_time_zone(db: OrmSession, now: datetime, user_id: int, time_zone: str) -> ConsoleUser:
    """The zone the console shows this user's times in."""
    row = _own(db, user_id)
    chosen = time_zone.strip()
    if not chosen:
        raise FieldError("time_zone", "Choose a time zone, such as Europe/Berlin or America/New_York.")
    try:
        _checked_zone(chosen)
    except InvalidInput as err:
        raise FieldError("time_zone", err.message) from None
    before = row.time_zone
    if before == chosen:
        return as_user(row)  # saved again as it was: nothing to record
    row.time_zone = chosen
    audit.record(db, now, row.email, "user.time-zone", f"user:{row.email}", before={"time_zone": before},
                 after={"time_zone": chosen})
    return as_user(row)


def change_own_password(db: OrmSession, now: datetime, user_id: int, current: str, new: str,
                        new_again: str) -> ConsoleUser:
    """The user's new password, once they have proved they know the current one (a browser left signed in must
    not be enough to take the account over). Every other browser is signed out: the returned user carries the new
    session version, for the browser that made the change."""
    row = _own(db, user_id)
    if not password_matches(current, row.password_hash):
        raise FieldError("current_password", "That is not your current password: nothing was changed. Type it "
                                             "again, or ask an administrator to set a new one.")
    try:
        checked_password(new)
    except InvalidInput as err:
        raise FieldError("new_password", err.message) from None
    if new != new_again:
        raise FieldError("new_password_again", "The two new passwords differ: type the same one twice.")
    if new == current:
        raise FieldError("new_password", "The new password is your current one: choose a different one.")
    row.password_hash, row.session_version = hash_password(new), row.session_version + 1
    row.failed_logins, row.locked_until = 0, None
    audit.record(db, now, row.email, "user.password", f"user:{row.email}",
                 after={"changed_by": "the user", "browsers": "all others signed out",
                        "calendar_feed_link": "replaced"})
    return as_user(row)


def sign_out_everywhere(db: OrmSession, now: datetime, user_id: int) -> None:
    """Every browser signed in as this user, this one included, must sign in again; the calendar feed link,
    derived from the same session version, is replaced too."""
    row = _own(db, user_id)
    row.session_version += 1
    audit.record(db, now, row.email, "user.sign-out-everywhere", f"user:{row.email}",
                 after={"browsers": "all signed out", "calendar_feed_link": "replaced"})
