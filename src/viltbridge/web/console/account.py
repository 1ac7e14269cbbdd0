"""Each signed-in user's own account page: their time zone, their password, their calendar feed link (instructors),
and signing out every browser at once. Every change is audited and carries the session's CSRF token."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from viltbridge.app import console_users
from viltbridge.app.console_users import FieldError
from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.errors import DomainError
from viltbridge.core.permissions import Permission
from viltbridge.security.crypto import MIN_PASSWORD_LENGTH
from viltbridge.web.console import auth, calendar
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page, see_other

router = APIRouter(prefix="/console", include_in_schema=False)

SignedIn = Annotated[ConsoleSession, Depends(auth.signed_in)]

SAVED = {"time-zone": "Time zone saved: times are now shown in {zone}.",
         "password": "Password changed. Every other browser signed in as you was signed out, and your calendar feed "
                     "link was replaced (the old one stops working)."}


def _account_page(request: Request, session: ConsoleSession, *, status: int = 200, saved: str | None = None,
                  errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
    ctx = context_of(request)
    user = session.user
    feed = (calendar.feed_url(ctx.public_url, ctx.keyring, user.id, user.session_version)
            if user.may(Permission.OWN_SESSIONS) else None)
    return page(request, "account.html", session, status=status, saved=saved, errors=errors or {},
                values={"time_zone": user.time_zone, **(values or {})}, zones=console_users.time_zone_names(),
                feed_url=feed,
                min_password_length=MIN_PASSWORD_LENGTH)


@router.get("/account")
async def account(request: Request, session: SignedIn,
                  saved: Annotated[Literal["time-zone", "password"] | None, Query()] = None) -> HTMLResponse:
    said = SAVED[saved].format(zone=session.user.time_zone) if saved else None
    return _account_page(request, session, saved=said)


@router.post("/account/time-zone")
async def change_time_zone(request: Request, session: SignedIn,
                           time_zone: Annotated[str, Form(max_length=100)] = "") -> Response:
    ctx = context_of(request)
    try:
        await run(ctx, console_users.set_time_zone, ctx.clock.now(), session.user.id, time_zone)
    except FieldError as err:
        return _account_page(request, session, status=400, errors={err.field: err.message},
                             values={"time_zone": time_zone})
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    return see_other(request, "/console/account?saved=time-zone")


@router.post("/account/password")
async def change_password(request: Request, session: SignedIn,
                          current_password: Annotated[str, Form(max_length=1000)] = "",
                          new_password: Annotated[str, Form(max_length=1000)] = "",
                          new_password_again: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Throttled as sign-in is: a browser left signed in must not become a way to guess the password."""
    ctx = context_of(request)
    email = session.user.email
    wait, refusal = auth.sign_in_wait(request, email)
    if wait:
        refused = _account_page(request, session, status=429, errors={"current_password": refusal})
        refused.headers["Retry-After"] = str(wait)
        return refused
    try:
        user = await run(ctx, console_users.change_own_password, ctx.clock.now(), session.user.id,
                         current_password, new_password, new_password_again)
    except FieldError as err:
        if err.field == "current_password":
            await auth.sign_in_failed(request, email)
        # Passwords are never written back into the page: a cached or shared page must not hold one.
        return _account_page(request, session, status=400, errors={err.field: err.message})
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    response = RedirectResponse("/console/account?saved=password", status_code=303)
    auth.set_session_cookie(response, ctx, user)  # this browser stays signed in, under the new session version
    return response


@router.post("/account/sign-out-everywhere")
async def sign_out_everywhere(request: Request, session: SignedIn) -> Response:
    ctx = context_of(request)
    try:
        await run(ctx, console_users.sign_out_everywhere, ctx.clock.now(), session.user.id)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    response = see_other(request, "/console/login")
    response.delete_cookie(auth.COOKIE, path="/console")
    return response
