"""`/metrics` for Prometheus, behind `VILTBRIDGE_METRICS_TOKEN`, and the HTTP request metrics of every route.

Without a token set, `/metrics` answers 404 as if it did not exist: what the server exports (providers in use, job
kinds, traffic) is not for anyone who can reach it.
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

# Set in the scope by a layer that answers without Starlette's routing (the launch fast path): the template of the
# route it stands in for.
ROUTE_TEMPLATE_KEY = "viltbridge.route_template"
UNMATCHED_ROUTE = "unmatched"  # no route: a 404, or refused by a middleware before routing
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    ctx = context_of(request)
    token = ctx.settings.metrics_token
    if not token:
        return JSONResponse({"error": "There is no endpoint at /metrics: set VILTBRIDGE_METRICS_TOKEN to enable it."},
                            status_code=404)
    if not _authorized(request, token):
        return JSONResponse({"error": "Send the metrics token (VILTBRIDGE_METRICS_TOKEN) as a bearer token."},
                            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(metrics.exposition(await scrape_time_families(ctx)), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def _template(scope: Scope) -> str:
    template = scope.get(ROUTE_TEMPLATE_KEY)
    if template is not None:
        return str(template)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path is not None else UNMATCHED_ROUTE


class HttpMetrics:
    """Counts every HTTP request by route template (never the raw path: its values are unbounded), method and
    status, and times it. Outermost, so it sees the launch fast path's answers too. The label children are made
    once per (route, method, status) and kept: per request the cost is two clock reads, a dict lookup, a counter
    and a histogram."""

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
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        key = (_template(scope), method, status)
        children = self._children.get(key)
        if children is None:
            children = (metrics.http_requests.labels(key[0], method, str(status)),
                        metrics.http_request_seconds.labels(key[0], method))
            self._children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)
