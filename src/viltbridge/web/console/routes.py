"""The console's pages under `/console`: sign-in and the home page. Connections are in `connections.py`, the
audit log in `audit.py`, each user's own account in `account.py`.

Every page names the permission it needs (`auth.requires`); anonymous browsers are sent to the sign-in page, and a
signed-in user without the permission gets a 403 page that says which permission is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from viltbridge.app import console_users
from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.permissions import Permission
from viltbridge.web.console import auth, timefmt
from viltbridge.web.console.auth import ConsoleSession

log = logging.getLogger("viltbridge.console")

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
timefmt.register(templates.env)
STATIC = Path(__file__).parent / "static"

NO_STORE = {"Cache-Control": "no-store"}


def page(request: Request, name: str, session: ConsoleSession | None, status: int = 200,
         **values: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, {"session": session, "Permission": Permission, **values},
                                          status_code=status, headers=NO_STORE)
    return response


def see_other(request: Request, target: str) -> Response:
    """After a change: a 303 for a plain form, HX-Redirect for htmx (which would otherwise swap the page in)."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)



def _safe_next(target: str | None) -> str:
    """Only a path inside the console: a sign-in link must not send the browser to another site."""
    if not target:
        return "/console"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console") or "\\" in target:
        return "/console"
    return target


# --- sign-in ---------------------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    token = auth.new_login_csrf()
    response = page(request, "login.html", None, next=_safe_next(next), login_csrf=token, error=None)
    response.set_cookie(auth.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=auth.cookie_is_secure(context_of(request)), path="/console/login")
    return response


@router.post("/login")
async def login(request: Request, email: Annotated[str, Form(max_length=320)],
                password: Annotated[str, Form(max_length=1000)],
                login_csrf: Annotated[str, Form(max_length=100)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/console") -> Response:
    ctx = context_of(request)
    target = _safe_next(next)
    if not auth.login_csrf_matches(request, login_csrf):
        return page(request, "login.html", None, status=403, next=target, login_csrf=auth.new_login_csrf(),
                    error="The sign-in form expired. Enter your email and password again.")
    wait, refusal = auth.sign_in_wait(request, email)
    if wait:
        refused = page(request, "login.html", None, status=429, next=target, login_csrf=login_csrf, error=refusal,
                       email=email)
        refused.headers["Retry-After"] = str(wait)
        return refused
    outcome = await run(ctx, console_users.sign_in, ctx.clock.now(), email, password)
    if outcome.user is None:
        await auth.sign_in_failed(request, email)
        log.warning("console sign-in refused for %s: %s", email[:320], outcome.why)
        token = auth.new_login_csrf()
        response = page(request, "login.html", None, status=401, next=target, login_csrf=token,
                        error=outcome.refusal, email=email)
        response.set_cookie(auth.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=auth.cookie_is_secure(ctx), path="/console/login")
        return response
    user = outcome.user
    log.info("console sign-in: %s", user.email)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(auth.COOKIE, auth.session_cookie(ctx, user), max_age=auth.SESSION_HOURS * 3600,
                        httponly=True, samesite="lax", secure=auth.cookie_is_secure(ctx), path="/console")
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, session: Annotated[ConsoleSession, Depends(auth.signed_in)]) -> Response:
    await auth.sign_out(request, session)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/console")
    return response


@router.get("")
async def home(session: Annotated[ConsoleSession, Depends(auth.signed_in)]) -> Response:
    if session.user.may(Permission.VIEW_CONNECTIONS):
        return RedirectResponse("/console/connections", status_code=303)
    if session.user.may(Permission.VIEW_SESSIONS):
        return RedirectResponse("/console/sessions", status_code=303)
    if session.user.may(Permission.OWN_SESSIONS):
        return RedirectResponse("/console/my-sessions", status_code=303)
    return RedirectResponse("/console/account", status_code=303)




# --- how refusals look -----------------------------------------------------------------------------------------


async def not_signed_in(request: Request, _: Exception) -> Response:
    target = "/console/login?next=" + quote(request.url.path)
    if request.headers.get("HX-Request"):  # htmx follows HX-Redirect, not a 303 to another page
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def not_permitted(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, auth.NotPermitted)
    session = getattr(request.state, "console_session", None)
    return page(request, "message.html", session, status=403, title="Not allowed",
                message=f"Your roles do not include the permission to {exc.permission.value}. Ask an "
                        "administrator to add the role you need.")


async def csrf_refused(request: Request, _: Exception) -> Response:
    session = getattr(request.state, "console_session", None)
    return page(request, "message.html", session, status=403, title="Form expired",
                message="This form expired or came from another site. Reload the page and try again.")


EXCEPTION_HANDLERS = {auth.NotSignedIn: not_signed_in, auth.NotPermitted: not_permitted,
                      auth.CsrfRefused: csrf_refused}
