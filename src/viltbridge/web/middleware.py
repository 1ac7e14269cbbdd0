"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs throughput on every request)."""

from __future__ import annotations

import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viltbridge.core.redaction import redact
from viltbridge.lms.cornerstone.wire import error_body
from viltbridge.observability import (
    correlation_id,
    debug_requested,
    pending_debug_request,
    redacted_body,
)

log = logging.getLogger("viltbridge.http")


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app a body already read, then defers to the real one (for disconnects)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestContextMiddleware:
    """Sets the correlation id (Cornerstone's `correlationId` header, or a new one) and notes `debug: true`.

    Debug detail is granted only once the caller has authenticated (`observability.grant_debug`): then the request,
    everything it causes (provider calls included) and the response are logged at DEBUG under the same
    correlation id, secrets redacted. An anonymous `debug: true` changes nothing.
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
        cid = given or uuid.uuid4().hex
        # Kept in the scope too: Starlette's last-resort error handler runs outside this middleware.
        scope.setdefault("state", {})["correlation_id"] = cid
        cid_token = correlation_id.set(cid)
        debug_token = debug_requested.set(False)
        pending_token = pending_debug_request.set(None)
        try:
            if debug:
                receive = await self._remember_request(scope, receive)
                send = self._echo(send)
            await self.app(scope, receive, send)
        finally:
            correlation_id.reset(cid_token)
            debug_requested.reset(debug_token)
            pending_debug_request.reset(pending_token)

    @staticmethod
    async def _remember_request(scope: Scope, receive: Receive) -> Receive:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        pending_debug_request.set(
            f"debug request {scope['method']} {scope['path']} query={redact(query)} headers={redact(headers)} "
            f"body={redacted_body(body, headers.get('content-type', ''))}"
        )
        return replaying(body, receive)

    @staticmethod
    def _echo(send: Send) -> Send:
        content_type = ""

        async def logged(message: Message) -> None:
            nonlocal content_type
            if debug_requested.get():
                if message["type"] == "http.response.start":
                    content_type = dict(message.get("headers", [])).get(b"content-type", b"").decode("latin-1")
                    log.debug("debug response status=%s", message["status"])
                elif message["type"] == "http.response.body" and message.get("body"):
                    log.debug("debug response body=%s", redacted_body(message["body"], content_type))
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
                await self._refuse(scope, send)
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
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        limit_kb = self.max_bytes // 1000
        # This middleware is outermost, so the correlation id is read here rather than from the context.
        given = next((v.decode("latin-1")[:200] for k, v in scope["headers"] if k == b"correlationid"), None)
        payload = json.dumps(error_body(
            413, f"The request body is larger than {limit_kb} kB, which is more than any vILT request needs. "
            "Send only the documented fields.", given or uuid.uuid4().hex,
        )).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
