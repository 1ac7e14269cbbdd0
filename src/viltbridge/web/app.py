"""The ASGI application: contract routes under the configured prefix, the launch redirect, health."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from viltbridge import __version__, bootstrap, metrics
from viltbridge.app.context import AppContext, context_of
from viltbridge.config import Settings, get_settings
from viltbridge.core import json_text
from viltbridge.core.clock import Clock
from viltbridge.core.errors import DomainError, NotReady, ProviderFailed
from viltbridge.lms.cornerstone.routes import router as cornerstone_router
from viltbridge.lms.cornerstone.wire import EnvelopeResponse, describe_validation_error, error_body
from viltbridge.observability import correlation_id
from viltbridge.security.throttle import AuthThrottle, SignInThrottled
from viltbridge.store.db import database_timed_out, database_unreachable
from viltbridge.web import api_docs, launch, webhooks
from viltbridge.web.console import account as console_account
from viltbridge.web.console import audit as console_audit
from viltbridge.web.console import connections as console_connections
from viltbridge.web.console import instructor as console_instructor
from viltbridge.web.console import routes as console
from viltbridge.web.console import sessions as console_sessions
from viltbridge.web.launch_fast_path import LaunchFastPath
from viltbridge.web.metrics import HttpMetrics
from viltbridge.web.metrics import router as metrics_router
from viltbridge.web.middleware import BodyLimitMiddleware, RequestContextMiddleware

log = logging.getLogger("viltbridge.web")


# When to ask again after a provider failure that will likely pass (an outage, a timeout) but gave no time itself:
# the "few minutes" its message speaks of.
PROVIDER_RETRY_AFTER_SECONDS = 300


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return EnvelopeResponse(error_body(code, message, correlation_id.get()), status_code=code, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="viltbridge"'
    if isinstance(exc, NotReady | ProviderFailed | SignInThrottled) and exc.retry_after_seconds:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    elif isinstance(exc, ProviderFailed) and exc.transient:  # an outage that did not say how long it lasts
        headers["Retry-After"] = str(PROVIDER_RETRY_AFTER_SECONDS)
    log.info("refused with %s: %s", exc.status, exc.message)
    return _error(exc.status, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message = describe_validation_error(list(exc.errors()), "The request was not accepted")
    if request.url.path.startswith("/console"):  # a person at a form: a page, not the LMS's JSON envelope
        return console.page(request, "message.html", getattr(request.state, "console_session", None), status=400,
                            title="Check the form", message=message)
    return _error(400, message)


# What the contract's routes begin with ("session", "instructor", "oauth").
CONTRACT_FIRST_SEGMENTS = frozenset(str(getattr(route, "path", "")).split("/")[1]
                                    for route in cornerstone_router.routes)


def _contract_path(request: Request) -> bool:
    """Whether the path is one the LMS contract could mean (under its prefix, starting like one of its routes):
    those keep the envelope whatever the caller accepts, since an LMS may well send a browser-like Accept."""
    ctx: AppContext | None = getattr(request.app.state, "ctx", None)
    prefix = ctx.settings.prefix.rstrip("/") if ctx is not None else ""
    path = request.url.path
    if not path.startswith(prefix + "/"):
        return False
    first = path[len(prefix) + 1:].split("/", 1)[0]
    return first in CONTRACT_FIRST_SEGMENTS


def _browser_not_found(request: Request) -> Response | None:
    """A person's browser on a path nothing serves (`/`, a mistyped console page) gets a page pointing to the
    console, or for `/` the console itself, instead of the LMS's JSON telling them to check Cornerstone Edge."""
    if "text/html" not in request.headers.get("accept", "") or _contract_path(request):
        return None
    if request.url.path == "/":
        return RedirectResponse("/console", status_code=302)
    return console.page(request, "message.html", None, status=404, title="Page not found",
                        message=f"There is no page at {request.url.path}. The viltbridge console is at /console.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        page = _browser_not_found(request)
        if page is not None:
            return page
        return _error(404, f"There is no endpoint at {request.url.path}. Check the base URL entered in Cornerstone "
                      "Edge: it should end with the connector's base path.")
    if exc.status_code == 405:
        return _error(405, f"{request.method} is not supported on {request.url.path}.",
                      dict(exc.headers or {}))
    # FastAPI's "There was an error parsing the body": say what was wrong with it.
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return _error(400, json_text.describe_undecodable(exc.__cause__))
    if isinstance(exc.__cause__, ValueError | RecursionError):
        return _error(400, json_text.describe_invalid_json(exc.__cause__))
    return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Runs in Starlette's outermost middleware, after RequestContextMiddleware has reset the context.
    reference = getattr(request.state, "correlation_id", None) or correlation_id.get()
    token = correlation_id.set(reference)
    try:
        log.exception("unexpected error")
        return _error(500, "Something went wrong inside the viltbridge connector; nothing was changed. Try again in "
                      f"a minute. If it keeps failing, give your administrator this reference: {reference}.")
    finally:
        correlation_id.reset(token)


# How long the LMS is asked to wait when the database is away (a restart or failover takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 5


async def _database_error(request: Request, exc: Exception) -> Response:
    """The database unreachable (restarting, failing over, out of connections, not answering in time) is a pause,
    not a fault of the connector: a 503 that says when to ask again, which the LMS and browsers act on, rather than
    a 500 or a hang."""
    if not database_unreachable(exc):
        return await _unexpected(request, exc)
    reference = correlation_id.get()
    what = "did not answer in time" if database_timed_out(exc) else "is not reachable right now"
    log.warning("database %s, answered 503: %s: %s", what, exc.__class__.__name__,
                (str(exc).splitlines() or ["(no message)"])[0])
    message = (f"The connector's database {what}, so this request was not completed. Try again in a few seconds. "
               f"If it keeps failing, give your administrator this reference: {reference}.")
    retry = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/l/"):  # a person's browser: a page, not the LMS's JSON envelope
        page = launch.message_page(503, message)
        page.headers.update(retry)
        return page
    if request.url.path.startswith("/console"):
        console_page = console.page(request, "message.html", getattr(request.state, "console_session", None),
                                    status=503, title="Please try again in a moment", message=message)
        console_page.headers.update(retry)
        return console_page
    return _error(503, message, retry)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: _domain_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    sa.exc.DBAPIError: _database_error,
    ConnectionError: _database_error,
    TimeoutError: _database_error,  # asyncpg's, connecting or waiting for an answer; others go on to a 500
    sa.exc.TimeoutError: _database_error,  # the pool's: no connection came free in time
    Exception: _unexpected,
    **console.EXCEPTION_HANDLERS,
}


class ViltbridgeApp(FastAPI):
    """FastAPI with the launch fast path (`web/launch_fast_path.py`) in front of everything, the HTTP metrics
    (`web/metrics.py`) and Starlette's error middleware included, where `add_middleware` cannot put it: the most
    frequent call skips every layer it does not need, and records its own metrics. `fast_launch_prefix` None leaves
    launches to the FastAPI route."""

    fast_launch_prefix: str | None = None

    def build_middleware_stack(self) -> ASGIApp:
        counted = HttpMetrics(super().build_middleware_stack())
        if self.fast_launch_prefix is None:
            return counted
        return LaunchFastPath(counted, prefix=self.fast_launch_prefix, handlers=self.exception_handlers,
                              http_metrics=counted)


def _published_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema, corrected to what the routes really do: 422 never leaves the server (bad input is a 400
    envelope), and the contract's operations declare their HTTP Basic / bearer security."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    public = {"/healthz", "/l/{token}", f"{settings.prefix}/oauth/token", "/webhooks/{connection}"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            if path not in public:
                operation["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
    components = schema.setdefault("components", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    components["securitySchemes"] = {
        "basicAuth": {"type": "http", "scheme": "basic", "description": "The connection's username and secret"},
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A token from /oauth/token"},
    }
    app.openapi_schema = schema
    return schema


def _settle() -> None:
    """Move every object made so far (modules, the app, the context, the pools) out of the garbage collector's
    generations. They live as long as the process, yet every full collection walked them all: under load on the
    launch endpoint that was a pause of 80-110 ms every few seconds, most of the p99 on PostgreSQL (measured: the
    pauses fell to 9-17 ms and the p99 from 79 to 28 ms). Not for tests, which build many apps in one process:
    frozen objects are never freed."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    clock: Clock | None = None,
    public_url: str | None = None,
    run_worker: bool = False,
    launch_fast_path: bool = True,
    freeze_startup_objects: bool = False,
) -> FastAPI:
    """The application. `run_worker` runs the job workers and the periodic upkeep inside this process (embedded
    mode); without it, jobs are only handed to the queue for `viltbridge worker` processes. `launch_fast_path`
    False leaves every launch to the FastAPI route (the tests compare both ways). `freeze_startup_objects`, for a
    server process (`viltbridge serve`), hides what start-up made from the garbage collector (see `_settle`)."""
    settings = settings or get_settings()
    keyring = bootstrap.open_keyring(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap.serving(settings, keyring, clock=clock, public_url=public_url,
                                     run_worker=run_worker) as ctx:
            app.state.ctx = ctx
            app.state.auth_throttle = AuthThrottle.from_settings(settings, keyring, ctx.clock)
            if freeze_startup_objects:
                _settle()
            try:
                yield
            finally:
                await app.state.auth_throttle.aclose()
                metrics.process_exiting()

    app = ViltbridgeApp(
        title="viltbridge",
        version=__version__,
        description="The Cornerstone vILT connector contract, served for any meeting provider.",
        lifespan=lifespan,
        openapi_url=None, docs_url=None, redoc_url=None,  # served by api_docs, to authenticated callers only
        # FastAPI's own OpenTelemetry hooks look for configured providers on every request (about a fifth of the
        # launch endpoint's time); viltbridge configures none, so they stay off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers=EXCEPTION_HANDLERS,
    )
    if launch_fast_path:
        app.fast_launch_prefix = settings.prefix
    app.add_middleware(RequestContextMiddleware)
    # Added last = outermost: nothing (not even debug logging) reads a body over the limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, lms_prefix=settings.prefix)
    app.include_router(cornerstone_router, prefix=settings.prefix)
    app.include_router(launch.router)
    app.include_router(api_docs.router)
    if settings.metrics_token:  # without a token, /metrics does not exist
        app.include_router(metrics_router)
    app.include_router(webhooks.router)
    app.include_router(console.router)
    app.include_router(console_connections.router)
    app.include_router(console_sessions.router)
    app.include_router(console_instructor.router)
    app.include_router(console_audit.router)
    app.include_router(console_account.router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC), name="console-static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask for it on every page, the launch pages included
        return FileResponse(console.STATIC / "favicon.ico", media_type="image/x-icon",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.openapi = lambda: _published_schema(app, settings)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["Operations"], responses={503: {"description": "The database is unreachable"}})
    async def healthz(request: Request) -> Any:
        ctx = context_of(request)
        try:
            # Its own deadline, whatever the pool and the statement timeouts add up to: a load balancer asking
            # whether to send traffic here wants an answer now.
            async with asyncio.timeout(ctx.db.timeouts.connect):
                async with ctx.db.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            log.warning("health check: database unreachable: %s: %s", exc.__class__.__name__, exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503,
                                headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
        return {"status": "ok", "database": "ok", "version": __version__}

    return app
