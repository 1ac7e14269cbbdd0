"""Who is calling the LMS contract: a connection's username and secret (HTTP Basic, or the OAuth client-credentials
form), or an access token signed for it.

Failures are counted per caller by a `FailureCounter`: the HTTP layer binds the sign-in throttle to the request's
client address. Once a caller is over the limit, attempts are refused before any secret is checked.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, Protocol

from viltbridge.app.context import CachedCaller
from viltbridge.app.uow import Reading
from viltbridge.core.errors import Forbidden, NotAuthenticated
from viltbridge.core.models import Connection
from viltbridge.observability import grant_debug
from viltbridge.security.crypto import secret_fingerprint, sign_access_token, verify_access_token
from viltbridge.security.throttle import SignInThrottled
from viltbridge.store import repository
from viltbridge.store.repository import ConnectionRecord
from viltbridge.store.tables import ConnectionRow

WRONG_CREDENTIALS = (
    "The username or password for the viltbridge connector is wrong. Check the credentials entered for this "
    "vendor in Cornerstone Edge against the ones viltbridge printed when the connection was created."
)
# Compared against when the username is unknown, so a wrong username costs the same time as a wrong secret.
_DUMMY_ROW = ConnectionRow(secret_salt="0" * 32, secret_digest="0" * 64)


class FailureCounter(Protocol):
    """The sign-in throttle, bound to one caller (their address): how long they must wait, and a failure counted."""

    def retry_after(self, account: str | None) -> int: ...

    async def failed(self, account: str | None) -> None: ...

    def message(self, seconds: int) -> str: ...


async def _check_client(read: Reading, username: str, secret: str,
                       failures: FailureCounter | None = None) -> CachedCaller | None:
    """The connection whose username and secret these are, or None (a failure, counted). Raises SignInThrottled,
    having checked nothing, while the caller is over the failure limit."""
    if failures is not None:
        wait = failures.retry_after(username)
        if wait:
            raise SignInThrottled(failures.message(wait), wait)
    caller = await read.ctx.callers.get(("username", username),
                                        lambda: _caller(read, repository.connection_row_by_username, username))
    # Every secret is checked, on a cached row too; an unknown username costs the same check, against a dummy row.
    matches = (caller or CachedCaller(_DUMMY_ROW, read.ctx.keyring)).secret_matches(secret)
    if caller is not None and matches:
        return caller
    if failures is not None:
        await failures.failed(username)
    return None


async def _caller(read: Reading, query: Callable[[Any, Any], ConnectionRecord | None],
                  key: object) -> CachedCaller | None:
    """What the callers' cache keeps for a connection looked up by `query(db, key)` (by username, or by id)."""
    row = await read.db.run_sync(query, key)
    return CachedCaller(row, read.ctx.keyring) if row is not None else None


async def authenticate(read: Reading, basic: tuple[str, str] | None, bearer: str | None,
                       failures: FailureCounter | None = None) -> Connection:
    """The calling connection, from Basic credentials (username, secret) or a bearer token; NotAuthenticated or
    Forbidden (deactivated) with what to do."""
    caller: CachedCaller | None = None
    if basic is not None:
        caller = await _check_client(read, *basic, failures=failures)
    elif bearer is not None:
        ctx = read.ctx
        verified = verify_access_token(bearer, ctx.access_token_keys, int(ctx.clock.now().timestamp()))
        if verified is None:
            raise NotAuthenticated("The access token is invalid or has expired; request a new one from /oauth/token.")
        connection_id = verified[0]
        caller = await ctx.callers.get(("id", connection_id),
                                       lambda: _caller(read, repository.connection_row, connection_id))
        if caller is not None and not hmac.compare_digest(secret_fingerprint(caller.row.secret_salt), verified[1]):
            raise NotAuthenticated("The access token was issued before the secret was changed; request a new one.")
    if caller is None:
        raise NotAuthenticated(WRONG_CREDENTIALS)
    row = caller.row
    if not row.active:
        raise Forbidden(
            f"The viltbridge integration '{row.name}' is deactivated, so nothing can be scheduled, launched or "
            "reported through it. Ask the viltbridge administrator to activate it again."
        )
    grant_debug()
    return caller.connection


async def access_token(read: Reading, username: str, secret: str,
                       failures: FailureCounter | None = None) -> tuple[str, int]:
    """An access token for the connection whose username and secret these are (OAuth client credentials), and its
    lifetime in seconds. Raises SignInThrottled, NotAuthenticated (wrong credentials) or Forbidden (deactivated)."""
    caller = await _check_client(read, username, secret, failures)
    if caller is None:
        raise NotAuthenticated(WRONG_CREDENTIALS)
    row = caller.row
    if not row.active:
        raise Forbidden(f"The viltbridge integration '{row.name}' is deactivated.")
    ctx = read.ctx
    ttl = ctx.settings.oauth_token_ttl_seconds
    token = sign_access_token(row.id, secret_fingerprint(row.secret_salt), int(ctx.clock.now().timestamp()) + ttl,
                              ctx.access_token_keys)
    return token, ttl
