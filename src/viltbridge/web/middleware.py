"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs throughput on every request)."""

from __future__ import annotations

import html
import json
import logging
import re
from random import getrandbits

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viltbridge.core import json_text
from viltbridge.core.redaction import redact
from viltbridge.lms.cornerstone.wire import error_body
from viltbridge.observability import (
    correlation_id,
    debug_requested,
    pending_debug_request,
    redacted_body,
)

log = logging.getLogger("viltbridge.http")

MAX_CORRELATION_ID = 200
# Visible ASCII only: the id is echoed in every envelope and written into every log line of the request, so a
# byte that could end a log line (NEL, U+2028 after decoding) or a space that splits a log field must not survive.
_NOT_IN_CORRELATION_ID = re.compile(r"[^\x21-\x7e]")


def given_correlation_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's `correlationId`, reduced to visible ASCII and 200 characters; None when nothing usable is left."""
    for name, value in headers:
        if name == b"correlationid":
            return _NOT_IN_CORRELATION_ID.sub("", value.decode("latin-1"))[:MAX_CORRELATION_ID] or None
    return None


def new_correlation_id() -> str:
    """32 hex digits, as a uuid4's: an id to find a request's log lines by, which need not be unguessable, so it
    costs no system call (os.urandom was a tenth of the launch endpoint's own time)."""
    return f"{getrandbits(128):032x}"


class RequestContext:
    """A request's correlation id (Cornerstone's `correlationId` header, or a new one) in the context variables the
    logs and envelopes read, with debug detail not granted; `close()` restores what was there. For the middleware
    below and for the launch fast path, which sits in front of it."""

    __slots__ = ("_tokens",)

    def __init__(self, scope: Scope) -> None:
        cid = given_correlation_id(scope["headers"]) or new_correlation_id()
        # Kept in the scope too: Starlette's last-resort error handler runs outside this middleware.
        scope.setdefault("state", {})["correlation_id"] = cid
        self._tokens = (correlation_id.set(cid), debug_requested.set(False), pending_debug_request.set(None))

    def close(self) -> None:
        cid_token, debug_token, pending_token = self._tokens
        correlation_id.reset(cid_token)
        debug_requested.reset(debug_token)
        pending_debug_request.reset(pending_token)


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
        debug = any(name == b"debug" and value.strip().lower() in (b"true", b"1", b"yes")
                    for name, value in scope["headers"])
        context = RequestContext(scope)
        try:
            if debug:
                receive = await self._remember_request(scope, receive)
                send = self._echo(send)
            await self.app(scope, receive, send)
        finally:
            context.close()

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
    """Reads every request body before anything else does, and refuses what no route should parse: a body over the
    limit (413, before it is all read), and one that is not JSON this server reads (400: not UTF-8, or nested
    deeper than any request needs; `core.json_text`). Each refusal comes in the format of the route it was sent to.

    The checks are linear in the body and run before authentication, so an anonymous hostile body costs the event
    loop no more than reading it (a 1 MB body: milliseconds)."""

    def __init__(self, app: ASGIApp, max_bytes: int, lms_prefix: str = "") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.oauth_path = f"{lms_prefix.rstrip('/')}/oauth/token"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, send, 413, self._too_large())
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
                await self._refuse(scope, send, 413, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and not self._is_form(scope):
            try:
                json_text.check(body)
            except json_text.UnreadableJson as refused:
                await self._refuse(scope, send, 400, str(refused))
                return
        await self.app(scope, replaying(body, receive), send)

    def _too_large(self) -> str:
        return (f"The request body is larger than {self.max_bytes // 1000} kB, which is more than any vILT request "
                "needs. Send only the documented fields.")

    @staticmethod
    def _is_form(scope: Scope) -> bool:
        """A form (a browser's console form, an OAuth token request): parsed field by field, never recursively."""
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"").lower()
        return content_type.startswith((b"application/x-www-form-urlencoded", b"multipart/form-data"))

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        path: str = scope["path"]
        content_type = b"application/json"
        if path.startswith("/console"):  # a person at a browser
            content_type, payload = b"text/html; charset=utf-8", refusal_page(message).encode()
        elif path == self.oauth_path:  # OAuth clients expect RFC 6749 §5.2 errors
            payload = json.dumps({"error": "invalid_request", "error_description": message}).encode()
        elif path.startswith("/webhooks/"):  # the webhook route's own shape
            payload = json.dumps({"error": message}).encode()
        else:
            # This middleware is outermost, so the correlation id is read here rather than from the context.
            payload = json.dumps(error_body(
                status, message, given_correlation_id(scope["headers"]) or new_correlation_id(),
            )).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"connection", b"close"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def refusal_page(message: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The request was not accepted</title>'
            '</head><body><main><h1>The request was not accepted</h1>'
            f"<p>{html.escape(message)}</p><p><a href=\"/console\">Back to the console</a></p></main></body></html>")
