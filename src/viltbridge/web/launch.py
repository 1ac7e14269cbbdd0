"""The public launch redirect `/l/<token>`: no LMS credentials, the signed token is the authority."""

from __future__ import annotations

import logging
from pathlib import Path as FilePath
from typing import Annotated

import jinja2
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from viltbridge.app import launches, sessions
from viltbridge.app.context import context_of
from viltbridge.core.errors import DomainError, NotFound, ProviderFailed
from viltbridge.core.launch_tokens import LaunchLinkExpired
from viltbridge.core.provider import LaunchLink

log = logging.getLogger("viltbridge.launch")

router = APIRouter(tags=["Launch"])

NO_LEAK_HEADERS = {
    "Cache-Control": "no-store",
    # The token is a credential: never send it to the provider in a Referer header.
    "Referrer-Policy": "no-referrer",
}


# The page's heading says why the person is not going in, most specific first; the message below it says what to do.
# One status covers several reasons (403: not open yet, ended, expired, switched off, forged), so the status alone
# cannot choose the heading.
HEADINGS: tuple[tuple[type[DomainError], str], ...] = (
    (launches.LaunchNotOpenYet, "You can't join yet"),
    (launches.LaunchEnded, "This class has ended"),
    (sessions.SessionCancelled, "This class was cancelled"),
    (LaunchLinkExpired, "This link has expired"),
    (launches.IntegrationSwitchedOff, "Joining online is switched off"),
    (NotFound, "This class can't be found"),
    (ProviderFailed, "The meeting can't be opened right now"),
)
UNUSABLE_LINK = "This link can't be used"  # forged, damaged or incomplete: nothing more to say about it


def heading_for(refusal: DomainError) -> str:
    return next((heading for kind, heading in HEADINGS if isinstance(refusal, kind)), UNUSABLE_LINK)


# The pages a learner may see instead of their class: self-contained (no console styles or scripts), escaped.
PAGES = jinja2.Environment(loader=jinja2.FileSystemLoader(FilePath(__file__).parent / "templates"), autoescape=True,
                           undefined=jinja2.StrictUndefined)


def message_page(status: int, message: str, title: str | None = None) -> HTMLResponse:
    title = title or ("Please try again in a moment" if status == 503 else UNUSABLE_LINK)
    page = PAGES.get_template("launch_message.html").render(title=title, message=message)
    return HTMLResponse(page, status_code=status, headers=NO_LEAK_HEADERS)


# How many times the launch page holds a person and asks the provider again before sending them to the fallback.
MAX_HOLDS = 2


def held_before(request: Request) -> int:
    """How many times this click was held already (the holding page counts in `?attempt=`); junk counts as done."""
    raw = request.query_params.get("attempt", "0")
    return int(raw) if raw.isdigit() and len(raw) < 3 else MAX_HOLDS


def holding_page(token: str, attempt: int, link: LaunchLink) -> HTMLResponse:
    """A short wait on our side while a personal link is on its way; the page asks again by itself."""
    seconds = max(1, round(link.retry_after_seconds or 1))
    page = PAGES.get_template("launch_holding.html").render(
        title="Getting your personal link", seconds=seconds, again=f"/l/{token}?attempt={attempt + 1}")
    return HTMLResponse(page, status_code=200, headers=NO_LEAK_HEADERS)


@router.get(
    "/l/{token}",
    summary="Launch redirect: sends one person to their meeting link and records the click",
    response_class=RedirectResponse,
    response_model=None,
    status_code=302,
    responses={
        200: {"description": "A short holding page while the provider prepares a personal link; it asks again "
                             "by itself", "content": {"text/html": {}}},
        302: {"description": "Redirect to the provider's meeting link for this person"},
        400: {"description": "A damaged link, or a cancelled class (HTML page)", "content": {"text/html": {}}},
        403: {"description": "Not open yet, ended, switched off, expired or forged (HTML page)",
              "content": {"text/html": {}}},
        404: {"description": "The class no longer exists (HTML page)", "content": {"text/html": {}}},
        500: {"description": "The provider failed (HTML page)", "content": {"text/html": {}}},
        503: {"description": "The connector's database is briefly unreachable; Retry-After says when to try again "
                             "(HTML page)", "content": {"text/html": {}}},
    },
)
async def follow(
    request: Request,
    token: Annotated[str, Path()],
    user_agent: Annotated[str | None, Header()] = None,
) -> RedirectResponse | HTMLResponse:
    ctx = context_of(request)
    try:
        held = held_before(request)
        may_hold = held < MAX_HOLDS
        link = await launches.follow(ctx, token, user_agent=user_agent, may_hold=may_hold)
        if may_hold and link.retry_after_seconds is not None:  # not recorded: the person has gone nowhere yet
            return holding_page(token, held, link)
        url = link.url
    except DomainError as exc:
        log.info("launch refused (%s): %s", exc.status, exc.message)
        return message_page(exc.status, exc.message, heading_for(exc))
    return RedirectResponse(url, status_code=302, headers=NO_LEAK_HEADERS)
