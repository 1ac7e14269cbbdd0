"""Who is calling, as HTTP says it: HTTP Basic (the spec) or an OAuth client-credentials bearer token (Cornerstone's
QA mock). The header is read here; the connection is found and checked by `app/access.py`.

Wrong secrets are counted per client address (`security/throttle.py`, bound to the request here): past the limit,
attempts are refused with a 429 before any secret is checked.
"""

from __future__ import annotations

import base64

from starlette.types import Scope

from viltbridge.app import access
from viltbridge.app.access import FailureCounter
from viltbridge.app.uow import Reading
from viltbridge.core.errors import NotAuthenticated
from viltbridge.core.models import Connection
from viltbridge.security.throttle import AuthThrottle

REALM = "lms"


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


class _CallerFailures:
    """The app's sign-in throttle bound to one request's client address, in the LMS realm."""

    def __init__(self, throttle: AuthThrottle, scope: Scope) -> None:
        self._throttle = throttle
        self._scope = scope

    def retry_after(self, account: str | None) -> int:
        return self._throttle.retry_after(self._scope, REALM, account)

    async def failed(self, account: str | None) -> None:
        await self._throttle.failed(self._scope, REALM, account)

    def message(self, seconds: int) -> str:
        return self._throttle.message(REALM, seconds)


def failures_of(scope: Scope | None) -> FailureCounter | None:
    """The failure counter for the request's caller, if the app runs a throttle."""
    app = scope.get("app") if scope is not None else None
    throttle = getattr(app.state, "auth_throttle", None) if app is not None else None
    return _CallerFailures(throttle, scope) if throttle is not None and scope is not None else None


async def authenticate(authorization: str | None, read: Reading, scope: Scope | None = None) -> Connection:
    """The calling connection, from the Authorization header; `scope` (the request's) turns on the throttle."""
    if not authorization:
        raise NotAuthenticated(
            "No credentials were sent. Enter the connector's username and password for this vendor in "
            "Cornerstone Edge."
        )
    basic = basic_credentials(authorization)
    bearer = authorization[7:].strip() if basic is None and authorization[:7].lower() == "bearer " else None
    return await access.authenticate(read, basic, bearer, failures_of(scope))
