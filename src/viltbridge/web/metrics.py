"""`/metrics` for Prometheus, behind `VILTBRIDGE_METRICS_TOKEN`, and the HTTP request metrics of every route.

Without a token set, the app has no `/metrics` route (404): what the server exports (providers in use, job kinds,
traffic) is not for anyone who can reach it.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viltbridge import metrics
from viltbridge.app.context import context_of
from viltbridge.app.metrics import scrape_time_families

router = APIRouter()

UNMATCHED_ROUTE = "unmatched"  # no route: a 404, or refused by a middleware before routing
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    ctx = context_of(request)
    token = ctx.settings.metrics_token
    if not token or not _authorized(request, token):
        return JSONResponse({"error": "Send the metrics token (VILTBRIDGE_METRICS_TOKEN) as a bearer token."},
                            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(metrics.exposition(await scrape_time_families(ctx)), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else UNMATCHED_ROUTE


class HttpMetrics:
    """Counts every HTTP request by route template (never the raw path: its values are unbounded), method and
    status, and times it. Around Starlette's stack; the launch fast path in front of it calls `record` itself. The
    label children are made once per (route, method, status) and kept: per request the cost is two clock reads, a
    dict lookup, a counter and a histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            self.record(_template(scope), scope["method"], status, time.perf_counter() - started)

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._bind(route, method, status)
            if method in KNOWN_METHODS:  # a made-up method is counted as "other", never kept: bounded
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    @staticmethod
    def _bind(route: str, method: str, status: int) -> tuple[Any, Any]:
        method = method if method in KNOWN_METHODS else "other"
        return (metrics.http_requests.labels(route, method, str(status)),
                metrics.http_request_seconds.labels(route, method))
