"""The console's connection pages: the list with each connection's health, a new connection, one connection's
page (health, owed work, settings form, host pool, history) and what an admin does there.

Settings forms are drawn from the provider's settings model (`app.connection_settings`). A form with a mistake
comes back with what was typed (never a secret) and each problem next to its field; a change that worked redirects
to the page with a notice saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from viltbridge.app import connection_settings, connections, dead_jobs
from viltbridge.app.connection_settings import FieldView
from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.errors import DomainError, InvalidInput
from viltbridge.core.permissions import Permission
from viltbridge.store.console_views import OwedJob
from viltbridge.web.console import auth
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page, see_other

log = logging.getLogger("viltbridge.console")

router = APIRouter(prefix="/console", include_in_schema=False)

FIELD_PREFIX = "s."  # a setting's form field: `s.<key>`, apart from the form's own fields (name, provider, csrf)
DEFAULT_PROVIDER = "link"  # needs no account anywhere: the natural first try

NOTICES = {  # ?did=... after a redirect: fixed words, so nothing from the address is shown as it came
    "saved": "Saved. The new settings are in use from now on.",
    "unchanged": "Nothing to save: every field was as stored.",
    "activated": "Activated: Cornerstone's calls are answered again.",
    "deactivated": "Deactivated: Cornerstone's calls are refused until it is activated again.",
    "retried": "Queued to run now.",
    "cancelled": "Cancelled: it will not run.",
}


@dataclass(frozen=True)
class FormFields:
    """A settings form's fields in its two groups: the vendor options every connection has, then the provider's."""

    options: list[FieldView]
    provider: list[FieldView]


def _grouped(views: list[FieldView]) -> FormFields:
    return FormFields([view for view in views if view.field.key in connections.OPTION_KEYS],
                      [view for view in views if view.field.key not in connections.OPTION_KEYS])


async def _typed_settings(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key.removeprefix(FIELD_PREFIX): value for key, value in form.items()
            if key.startswith(FIELD_PREFIX) and isinstance(value, str)}


def _notice(did: str | None, job: int | None, owed: list[OwedJob]) -> str | None:
    said = NOTICES.get(did or "")
    if said is None or job is None:
        return said
    kind = next((owed_job.kind for owed_job in owed if owed_job.id == job), None)
    if did == "cancelled" and kind is not None:
        return f"Job #{job} ({kind}) cancelled: it will not run. {dead_jobs.cancel_means(kind)}"
    return f"Job #{job}{f' ({kind})' if kind else ''}: {said[0].lower()}{said[1:]}"


# --- the list ----------------------------------------------------------------------------------------------------


@router.get("/connections")
async def connection_list(
        request: Request,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.VIEW_CONNECTIONS))]) -> HTMLResponse:
    ctx = context_of(request)
    return page(request, "connections.html", session, connections=await connections.listing(ctx),
                lms_base_url=ctx.lms_base_url)


# --- a new connection --------------------------------------------------------------------------------------------


def _new_page(request: Request, session: ConsoleSession, provider: str, *, status: int = 200, name: str = "",
              typed: dict[str, str] | None = None, error: InvalidInput | None = None) -> HTMLResponse:
    kinds = connections.provider_kinds()
    if provider not in dict(kinds):
        provider = DEFAULT_PROVIDER
    fields = connection_settings.form_fields(provider)
    errors = error.fields if error is not None else {}
    unplaced = error is not None and not (set(errors) & {"name", "provider", "settings", *(f.key for f in fields)})
    return page(request, "new_connection.html", session, status=status, providers=kinds, provider=provider,
                connection_name=name, error=error.message if unplaced and error is not None else None,
                settings_error=errors.get("settings"), name_error=errors.get("name"),
                fields=_grouped(connection_settings.form_view(fields, typed or {}, set(), errors)),
                field_prefix=FIELD_PREFIX, typed_secret=any(typed and typed.get(f.key) for f in fields if f.secret))


@router.get("/connections/new")
async def new_connection_form(
        request: Request,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))],
        provider: str = DEFAULT_PROVIDER, name: str = "") -> HTMLResponse:
    return _new_page(request, session, provider, name=name[:100])


@router.post("/connections/new")
async def create_connection(
        request: Request,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))],
        name: Annotated[str, Form(max_length=100)], provider: Annotated[str, Form(max_length=40)]) -> Response:
    """A new integration: prints what the admin enters in Cornerstone, the secret once."""
    ctx = context_of(request)
    typed = await _typed_settings(request)
    try:
        created = await run(ctx, connections.create_from_form, ctx.keyring, name.strip(), provider, typed,
                            actor=session.user.email)
    except InvalidInput as err:
        return _new_page(request, session, provider, status=err.status, name=name, typed=typed, error=err)
    log.info("console: %s created connection %s", session.user.email, name.strip())
    return page(request, "secret.html", session, connection=name.strip(), username=created.row.username,
                password=created.password, lms_base_url=ctx.lms_base_url, created=True)


# --- one connection ----------------------------------------------------------------------------------------------


async def _connection_page(request: Request, session: ConsoleSession, name: str, *, status: int = 200,
                           problem: str | None = None, did: str | None = None, job: int | None = None,
                           typed: dict[str, str] | None = None, error: InvalidInput | None = None,
                           secret_error: str | None = None) -> HTMLResponse:
    try:
        seen = await connections.overview(context_of(request), name)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="No such connection",
                    message=err.message)
    form = seen.form
    errors = error.fields if error is not None else {}
    placed = set(errors) & {field.key for field in form.fields}
    return page(request, "connection.html", session, status=status, connection=seen.details, history=seen.history,
                health=seen.health, hosts=seen.hosts, seen=seen.seen, verdict=seen.verdict, owed=seen.owed,
                notice=_notice(did, job, seen.owed), problem=problem,
                settings_fields=_grouped(connection_settings.form_view(form.fields, {**form.values, **(typed or {})},
                                                                       form.secrets_set, errors)),
                settings_error=(errors.get("settings") or (error.message if not placed else None)) if error else None,
                stored=_grouped(connection_settings.form_view(form.fields, form.values, form.secrets_set, {})),
                field_prefix=FIELD_PREFIX, cancel_means=dead_jobs.cancel_means, secret_error=secret_error,
                min_secret_length=connections.MIN_CHOSEN_SECRET_LENGTH)


@router.get("/connections/{name}")
async def connection_page(
        request: Request, name: str,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.VIEW_CONNECTIONS))],
        did: str | None = None, job: int | None = None) -> HTMLResponse:
    return await _connection_page(request, session, name, did=did, job=job)


def _back(request: Request, name: str, did: str, job: int | None = None) -> Response:
    target = f"/console/connections/{quote(name)}?did={did}" + (f"&job={job}" if job is not None else "")
    return see_other(request, target + ("#owed" if job is not None else ""))


async def _set_active(request: Request, name: str, session: ConsoleSession, active: bool) -> Response:
    ctx = context_of(request)
    try:
        await run(ctx, connections.set_active, name, active, actor=session.user.email)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    log.info("console: %s %s connection %s", session.user.email, "activated" if active else "deactivated", name)
    return _back(request, name, "activated" if active else "deactivated")


@router.post("/connections/{name}/activate")
async def activate(
        request: Request, name: str,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))]) -> Response:
    return await _set_active(request, name, session, True)


@router.post("/connections/{name}/deactivate")
async def deactivate(
        request: Request, name: str,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))]) -> Response:
    return await _set_active(request, name, session, False)


@router.post("/connections/{name}/rotate-secret")
async def rotate_secret(
        request: Request, name: str,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))],
        new_secret: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """A new LMS secret (generated, or the admin's own if long enough), shown once; the old one stops working at
    once."""
    ctx = context_of(request)
    try:
        created = await run(ctx, connections.rotate_secret, name, new_secret or None, actor=session.user.email)
    except InvalidInput as err:
        return await _connection_page(request, session, name, status=err.status, secret_error=err.fields.get(
            "new_secret", err.message))
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    return page(request, "secret.html", session, connection=name, username=created.row.username,
                password=created.password, lms_base_url=ctx.lms_base_url, created=False)


@router.post("/connections/{name}/settings")
async def change_settings(
        request: Request, name: str,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.CONFIGURE_CONNECTIONS))]) -> Response:
    """The settings form: checked as a whole before anything is saved; a mistake brings the form back with what was
    typed and the problem next to its field."""
    ctx = context_of(request)
    typed = await _typed_settings(request)
    try:
        changed = await run(ctx, connections.change_from_form, ctx.keyring, name, typed, actor=session.user.email)
    except InvalidInput as err:
        return await _connection_page(request, session, name, status=err.status, typed=typed, error=err)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    return _back(request, name, "saved" if changed else "unchanged")


# --- owed work ---------------------------------------------------------------------------------------------------


@router.post("/connections/{name}/jobs/{job_id}/retry")
async def retry_job(
        request: Request, name: str, job_id: int,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))]) -> Response:
    try:
        await dead_jobs.run_now(context_of(request), name, job_id, actor=session.user.email)
    except DomainError as err:
        return await _connection_page(request, session, name, status=err.status, problem=err.message)
    log.info("console: %s queued job #%d of %s to run now", session.user.email, job_id, name)
    return _back(request, name, "retried", job_id)


@router.post("/connections/{name}/jobs/{job_id}/cancel")
async def cancel_job(
        request: Request, name: str, job_id: int,
        session: Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))]) -> Response:
    try:
        await dead_jobs.cancel(context_of(request), name, job_id, actor=session.user.email)
    except DomainError as err:
        return await _connection_page(request, session, name, status=err.status, problem=err.message)
    log.info("console: %s cancelled job #%d of %s", session.user.email, job_id, name)
    return _back(request, name, "cancelled", job_id)
