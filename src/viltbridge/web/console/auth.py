"""Console sign-in: a signed session cookie, CSRF tokens, and the permission each page requires.

The cookie holds the user id, the user's session version (bumped by a password change, "sign out everywhere" or
deactivation, which signs every browser out) and a random nonce naming this session (signing out records it as
signed out, so a copy of the cookie kept from before opens nothing); it is signed with a key derived from the
server's keyring, so rotating VILTBRIDGE_SECRET_KEY keeps sessions valid until the old key is dropped. A form's CSRF
token is an HMAC of the session nonce: a page from another site cannot know it, and a signed-out browser has none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from viltbridge.app import console_users
from viltbridge.app.console_users import ConsoleUser
from viltbridge.app.context import AppContext, context_of
from viltbridge.app.uow import run
from viltbridge.core.permissions import Permission
from viltbridge.security.throttle import AuthThrottle

COOKIE = "vb_console"
LOGIN_CSRF_COOKIE = "vb_login_csrf"
SESSION_HOURS = 12
SESSION_LIFETIME = timedelta(hours=SESSION_HOURS)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class NotSignedIn(Exception):
    """No valid console session: the browser is sent to the sign-in page."""


class NotPermitted(Exception):
    """Signed in, but the user's roles do not grant what the page needs."""

    def __init__(self, permission: Permission) -> None:
        super().__init__(permission.value)
        self.permission = permission


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token."""


@dataclass(frozen=True)
class ConsoleSession:
    user: ConsoleUser
    nonce: str
    csrf_token: str


def _serializer(ctx: AppContext) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts any: the keyring lists newest first.
    keys = list(reversed(ctx.keyring.derived("console-session")))
    return URLSafeTimedSerializer(keys, salt="viltbridge-console")


def _csrf_for(ctx: AppContext, nonce: str) -> str:
    key = ctx.keyring.derived("console-csrf")[0]
    return hmac.new(key, nonce.encode("ascii"), hashlib.sha256).hexdigest()


def session_cookie(ctx: AppContext, user: ConsoleUser) -> str:
    return _serializer(ctx).dumps({"u": user.id, "v": user.session_version, "n": secrets.token_urlsafe(16)})


def cookie_is_secure(ctx: AppContext) -> bool:
    return ctx.public_url.startswith("https://")


def set_session_cookie(response: Response, ctx: AppContext, user: ConsoleUser) -> None:
    """A new session for `user` in this browser (a new nonce, the user's current session version)."""
    response.set_cookie(COOKIE, session_cookie(ctx, user), max_age=SESSION_HOURS * 3600, httponly=True,
                        samesite="lax", secure=cookie_is_secure(ctx), path="/console")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


THROTTLE_REALM = "console"


def _throttle(request: Request) -> AuthThrottle | None:
    return getattr(request.app.state, "auth_throttle", None)


def sign_in_wait(request: Request, email: str) -> tuple[int, str]:
    """Seconds this sign-in must wait before any password is checked (0: go ahead), and what to tell the person."""
    throttle = _throttle(request)
    wait = throttle.retry_after(request.scope, THROTTLE_REALM, email) if throttle is not None else 0
    return wait, throttle.message(THROTTLE_REALM, wait) if throttle is not None and wait else ""


async def sign_in_failed(request: Request, email: str) -> None:
    throttle = _throttle(request)
    if throttle is not None:
        await throttle.failed(request.scope, THROTTLE_REALM, email)


def login_csrf_matches(request: Request, given: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, given)


async def console_session(request: Request) -> ConsoleSession:
    """The signed-in session of this request, or NotSignedIn."""
    cached = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ctx = context_of(request)
    raw = request.cookies.get(COOKIE)
    if not raw:
        raise NotSignedIn
    try:
        data = _serializer(ctx).loads(raw, max_age=SESSION_HOURS * 3600)
    except BadSignature:
        raise NotSignedIn from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("n"), str):
        raise NotSignedIn
    user = await run(ctx, console_users.signed_in_user, data["u"], data.get("v"), data["n"])
    if user is None:
        raise NotSignedIn
    session = ConsoleSession(user=user, nonce=data["n"], csrf_token=_csrf_for(ctx, data["n"]))
    request.state.console_session = session
    return session


def requires(permission: Permission) -> Callable[[Request], Awaitable[ConsoleSession]]:
    """A dependency: the session, if its user may `permission`; state-changing methods must carry the CSRF token."""

    async def dependency(request: Request) -> ConsoleSession:
        session = await console_session(request)
        if not session.user.may(permission):
            raise NotPermitted(permission)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await _check_csrf(request, session)
        return session

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route table and its tests
    return dependency


async def sign_out(request: Request, session: ConsoleSession) -> None:
    """Refuse this session's cookie from now on, on the server: deleting it in the browser is not enough, since a
    copy may have been kept."""
    ctx = context_of(request)
    await run(ctx, console_users.sign_out, ctx.clock.now(), session.user.id, session.nonce, SESSION_LIFETIME)


async def signed_in(request: Request) -> ConsoleSession:
    """A dependency for pages every signed-in user may see (their own account, sign-out)."""
    session = await console_session(request)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await _check_csrf(request, session)
    return session


async def _check_csrf(request: Request, session: ConsoleSession) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    if not given or not hmac.compare_digest(given, session.csrf_token):
        raise CsrfRefused
