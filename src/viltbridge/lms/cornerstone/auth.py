"""Who is calling: HTTP Basic (the spec) or an OAuth client-credentials bearer token (Cornerstone's QA mock).

The connection is found by its username (Basic) or by the signed token; the client id and secret of the OAuth
flow are the same username and secret. Wrong secrets are counted per client address (`security/throttle.py`): past the
limit, attempts are refused with a 429 before any secret is checked.
"""

from __future__ import annotations

import base64
import hmac

from starlette.types import Scope

from viltbridge.app import connections
from viltbridge.app.context import AppContext
from viltbridge.core.errors import Forbidden, NotAuthenticated
from viltbridge.core.models import Connection
from viltbridge.crypto import secret_fingerprint, verify_access_token
from viltbridge.observability import grant_debug
from viltbridge.security.throttle import AuthThrottle, SignInThrottled
from viltbridge.store import repository
from viltbridge.store.db import SyncRunner
from viltbridge.store.repository import ConnectionRecord
from viltbridge.store.tables import ConnectionRow

REALM = "lms"

WRONG_CREDENTIALS = (
    "The username or password for the viltbridge connector is wrong. Check the credentials entered for this "
    "vendor in Cornerstone Edge against the ones viltbridge printed when the connection was created."
)
# Compared against when the username is unknown, so a wrong username costs the same time as a wrong secret.
_DUMMY_ROW = ConnectionRow(secret_salt="0" * 32, secret_digest="0" * 64)


def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII at all, or not UTF-8 once decoded
        return None
    username, sep, secret = decoded.partition(":")
    return (username, secret) if sep else None


def _throttle(scope: Scope | None) -> AuthThrottle | None:
    app = scope.get("app") if scope is not None else None
    return getattr(app.state, "auth_throttle", None) if app is not None else None


async def check_client(db: SyncRunner, username: str, secret: str,
                       scope: Scope | None = None) -> ConnectionRecord | None:
    """The connection whose username and secret these are, or None. With the request's `scope`, throttled: raises
    SignInThrottled (nothing checked) while its address is over the failure limit, and counts a failure."""
    throttle = _throttle(scope)
    if throttle is not None and scope is not None:
        wait = throttle.retry_after(scope, REALM, username)
        if wait:
            raise SignInThrottled(throttle.message(REALM, wait), wait)
    row = await db.run_sync(repository.connection_row_by_username, username)
    matches = connections.check_secret(row or _DUMMY_ROW, secret)
    if row is not None and matches:
        return row
    if throttle is not None and scope is not None:
        await throttle.failed(scope, REALM, username)
    return None


async def authenticate(authorization: str | None, db: SyncRunner, ctx: AppContext,
                       scope: Scope | None = None) -> Connection:
    """The calling connection; `scope` (the request's) turns on the failure throttle."""
    if not authorization:
        raise NotAuthenticated(
            "No credentials were sent. Enter the connector's username and password for this vendor in "
            "Cornerstone Edge."
        )
    row: ConnectionRecord | None = None
    credentials = basic_credentials(authorization)
    if credentials is not None:
        row = await check_client(db, *credentials, scope=scope)
    elif authorization[:7].lower() == "bearer ":
        verified = verify_access_token(authorization[7:].strip(), ctx.access_token_keys,
                                       int(ctx.clock.now().timestamp()))
        if verified is None:
            raise NotAuthenticated("The access token is invalid or has expired; request a new one from /oauth/token.")
        row = await db.run_sync(repository.connection_row, verified[0])
        if row is not None and not hmac.compare_digest(secret_fingerprint(row.secret_salt), verified[1]):
            raise NotAuthenticated("The access token was issued before the secret was changed; request a new one.")
    if row is None:
        raise NotAuthenticated(WRONG_CREDENTIALS)
    if not row.active:
        raise Forbidden(
            f"The viltbridge integration '{row.name}' is deactivated, so nothing can be scheduled, launched or "
            "reported through it. Ask the viltbridge administrator to activate it again."
        )
    grant_debug()
    return repository.connection_from_row(row, ctx.keyring)
