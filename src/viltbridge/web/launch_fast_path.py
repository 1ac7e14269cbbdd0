"""The launch endpoint without FastAPI's routing: Cornerstone calls `GET {prefix}/session/{SessionId}/user/
{base64EncodedEmail}/url` on every click, and a class of hundreds clicks in the same minute.

This pure ASGI layer is the application's outermost (`web.app.ViltbridgeApp`), in front of Starlette's error
middleware and the app's own: for that one path it sets the request's context as `RequestContextMiddleware` does,
calls the same function as the FastAPI route (`lms.cornerstone.routes.launch_answer`) and turns errors into
responses with the same exception handlers, an unexpected one as Starlette's error middleware would (the catch-all
handler's 500 envelope, then raised on for the server to log). So the answers are the same byte for byte but for
the timestamp. The body-size checks have nothing to do for a GET. What it leaves to the route: any request with a
`debug` header (the route logs it in detail), any method but GET, and a path the route would not match. The
FastAPI route stays, for those and for the OpenAPI document. `tests/lms/test_launch_fast_path.py` sends the same
requests both ways and compares.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from viltbridge.lms.cornerstone.routes import launch_answer
from viltbridge.web.metrics import HttpMetrics
from viltbridge.web.middleware import RequestContext

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class LaunchFastPath:
    def __init__(self, app: ASGIApp, *, prefix: str, handlers: Mapping[Any, ExceptionHandler],
                 http_metrics: HttpMetrics) -> None:
        self.app = app
        # As Starlette matches the route: `{SessionId}` is one segment, `{base64EncodedEmail:path}` may hold "/".
        self.path = re.compile(rf"{re.escape(prefix.rstrip('/'))}/session/([^/]+)/user/(.*)/url")
        self.handlers = dict(handlers)
        # Counted under the FastAPI route's own template, as if the route had answered. Recorded here rather than
        # by wrapping `send`: the status is at hand, and a wrapper's extra awaits cost this endpoint more.
        self.http_metrics = http_metrics
        self.template = f"{prefix.rstrip('/')}/session/{{SessionId}}/user/{{base64EncodedEmail:path}}/url"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._launch(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        session_id, encoded_email, authorization = found
        started = time.perf_counter()
        status = 500  # as the server answers an exception raised on
        context = RequestContext(scope)
        try:
            try:
                response: Response = await launch_answer(scope["app"].state.ctx, scope, authorization, session_id,
                                                         encoded_email)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                response = await handler(Request(scope, receive), exc)
                if not self._handled(exc):
                    status = response.status_code
                    await response(scope, receive, send)
                    raise  # as Starlette's error middleware does: the server logs it
            status = response.status_code
            await response(scope, receive, send)
        finally:
            context.close()
            self.http_metrics.record(self.template, "GET", status, time.perf_counter() - started)

    def _launch(self, scope: Scope) -> tuple[str, str, str | None] | None:
        """(SessionId, base64EncodedEmail, Authorization) when this request is one the fast path answers."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        found = self.path.fullmatch(scope["path"])
        if found is None:
            return None
        authorization = None
        for name, value in scope["headers"]:
            if name == b"debug":
                return None
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        return found.group(1), found.group(2), authorization

    def _handler(self, exc: Exception) -> ExceptionHandler | None:
        for kind in type(exc).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None

    def _handled(self, exc: Exception) -> bool:
        """Whether a handler of its own answers `exc` (what Starlette's exception middleware does), rather than the
        catch-all for `Exception` (what its error middleware does, raising the exception on afterwards)."""
        return any(kind in self.handlers for kind in type(exc).__mro__ if kind is not Exception)
