"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs throughput on every request)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viltbridge.lms.cornerstone.wire import error_body
from viltbridge.observability import correlation_id, debug_requested, redact

log = logging.getLogger("viltbridge.http")


class RequestContextMiddleware:
    """Sets the correlation id (Cornerstone's `correlationId` header, or a new one) and the debug flag.

    For `debug: true`, the request is logged in full with secrets redacted; everything the request causes
    (provider calls included) logs at DEBUG under the same correlation id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, debug = None, False
        for name, value in scope["headers"]:
            if name == b"correlationid":
                given = value.decode("latin-1")[:200]
            elif name == b"debug":
                debug = value.strip().lower() in (b"true", b"1", b"yes")
        cid_token = correlation_id.set(given or uuid.uuid4().hex)
        debug_token = debug_requested.set(debug)
        try:
            if debug:
                receive = await self._log_request(scope, receive)
            await self.app(scope, receive, self._echo(send) if debug else send)
        finally:
            correlation_id.reset(cid_token)
            debug_requested.reset(debug_token)

    @staticmethod
    async def _log_request(scope: Scope, receive: Receive) -> Receive:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = redact({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        try:
            shown: Any = redact(json.loads(body)) if body else None
        except ValueError:
            shown = body[:2000].decode("utf-8", "replace")
        log.debug("debug request %s %s query=%s headers=%s body=%s", scope["method"], scope["path"],
                  redact(scope.get("query_string", b"").decode("latin-1")), headers, shown)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    def _echo(send: Send) -> Send:
        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                log.debug("debug response status=%s", message["status"])
            elif message["type"] == "http.response.body" and message.get("body"):
                log.debug("debug response body=%s", redact(message["body"][:4000].decode("utf-8", "replace")))
            await send(message)

        return logged


class BodyLimitMiddleware:
    """Refuse bodies over the limit with a 413 envelope before any handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        limit_kb = self.max_bytes // 1000
        payload = json.dumps(error_body(
            413, f"The request body is larger than {limit_kb} kB, which is more than any vILT request needs. "
            "Send only the documented fields.", correlation_id.get(),
        )).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
