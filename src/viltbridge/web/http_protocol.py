"""uvicorn's fast HTTP protocol (httptools), with two changes: requests it cannot parse are answered in the LMS's
error envelope, and a response's head leaves with its body in one write.

uvicorn refuses a request whose request line or headers the parser rejects (a URL over 64 KiB, a malformed header)
with a plain-text 400 before any ASGI app runs, so no middleware can shape that answer. This subclass changes only
the body of that answer; parsing stays uvicorn's.

uvicorn writes a response's head (status line and headers) as soon as the app starts the response, and the body
when it comes: two writes, two system calls and two TCP segments for every small JSON answer. A write to a socket
is the largest single cost of the launch endpoint (a profile under load on a 2-core VM: about 50 us each, more
than the endpoint's own work), so the head waits for the body, at most until the current turn of the event loop
ends.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from viltbridge.lms.cornerstone.wire import error_body
from viltbridge.web.middleware import new_correlation_id

# Where uvicorn is told to find it (an import string also reaches the processes of `serve --workers N`).
ENVELOPE_HTTP_PROTOCOL = "viltbridge.web.http_protocol:EnvelopeHttpToolsProtocol"

UNREADABLE_REQUEST = (
    "The request could not be read as HTTP: its request line or a header is malformed, or the URL and headers are "
    "longer than the server accepts (64 KB). Send the documented path with only the documented query parameters."
)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The cycle (one request's response) is the only writer of responses; hand it the joining transport.
        self.cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        # The request was never parsed, so there is no correlationId to echo: a fresh one ties the log line to it.
        reference = new_correlation_id()
        self.logger.warning("unreadable HTTP request (%s), answered 400 [%s]", msg, reference)
        payload = json.dumps(error_body(400, UNREADABLE_REQUEST, reference)).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(payload),
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + payload)
        self.transport.close()


class HeadWithBody:
    """A transport for one response: the first write (the head) is held until the next (the body) and both go out
    as one. Nothing is held past the current turn of the event loop (a HEAD request, a body that is slow to come:
    the head then goes alone), and a body larger than `JOIN_AT_MOST` is not copied onto the head."""

    JOIN_AT_MOST = 64 * 1024

    __slots__ = ("_held", "_holding", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""
        self._holding = True  # only the first write is held

    def write(self, data: bytes) -> None:
        if self._holding:
            self._holding = False
            self._held = data
            self._loop.call_soon(self.flush)
            return
        if self._held:
            held, self._held = self._held, b""
            if len(data) <= self.JOIN_AT_MOST:
                self._transport.write(held + data)
                return
            self._transport.write(held)
        self._transport.write(data)

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
