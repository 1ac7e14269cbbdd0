"""uvicorn's fast HTTP protocol (httptools), answering requests it cannot parse in the LMS's error envelope.

uvicorn refuses a request whose request line or headers the parser rejects (a URL over 64 KiB, a malformed header)
with a plain-text 400 before any ASGI app runs, so no middleware can shape that answer. This subclass changes only
the body of that answer; parsing, and its speed, stay uvicorn's.
"""

from __future__ import annotations

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
