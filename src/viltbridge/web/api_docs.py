"""The published API (`/openapi.json`, Swagger UI at `/docs`, ReDoc at `/redoc`), for authenticated callers only.

Nothing but health, the launch redirect, the token endpoint, provider webhooks, the console's sign-in page and the
instructor calendar feed answers without credentials (each of those authenticates otherwise, see
tests/security/test_route_auth.py). The schema lists every operation and its answers, which helps an attacker as
much as an integrator, so it needs the LMS's credentials (HTTP Basic or a bearer token: a browser asks for them)
or, under `/console/api/…`, a console sign-in (the console cookie is scoped to /console).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from viltbridge.core.models import Connection
from viltbridge.lms.cornerstone.routes import lms_caller
from viltbridge.web.console.auth import ConsoleSession, signed_in

router = APIRouter(include_in_schema=False)

TITLE = "viltbridge API"


def _schema(request: Request) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/openapi.json")
async def openapi_document(request: Request, _: Annotated[Connection, Depends(lms_caller)]) -> JSONResponse:
    return _schema(request)


@router.get("/docs")
async def swagger_ui(_: Annotated[Connection, Depends(lms_caller)]) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=TITLE)


@router.get("/redoc")
async def redoc(_: Annotated[Connection, Depends(lms_caller)]) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=TITLE)


@router.get("/console/api/openapi.json")
async def console_openapi_document(request: Request,
                                   _: Annotated[ConsoleSession, Depends(signed_in)]) -> JSONResponse:
    return _schema(request)


@router.get("/console/api/docs")
async def console_swagger_ui(_: Annotated[ConsoleSession, Depends(signed_in)]) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/console/api/openapi.json", title=TITLE)
