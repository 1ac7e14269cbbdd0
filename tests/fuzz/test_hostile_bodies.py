"""A corpus of hostile bodies sent to every route that reads one, on a running server: each is refused with a 4xx in
that route's own format (the LMS envelope, OAuth's error object, the webhook route's, a page for the console), and
while it is being read `/healthz` keeps answering within a second: nothing a body holds can stall the server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Db, session_body
from tests.security.test_route_auth import all_routes, concrete
from viltbridge.core.json_text import MAX_DEPTH

LIMIT = 1_000_000  # the default VILTBRIDGE_MAX_BODY_BYTES
HEALTH_BOUND_SECONDS = 1.0
ANSWER_BOUND_SECONDS = 2.0
DEEP = "[" * 5_000 + "]" * 5_000


def encoded(text: str, encoding: str, bom: bool) -> bytes:
    codec = {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16-be", "utf-32-le": "utf-32",
             "utf-32-be": "utf-32-be"}[encoding] if bom else encoding
    raw = text.encode(codec)
    if bom and encoding.endswith("-be"):  # Python writes big-endian marks only for the plain codec on BE hosts
        raw = {"utf-16-be": b"\xfe\xff", "utf-32-be": b"\x00\x00\xfe\xff"}[encoding] + raw
    return raw


def corpus() -> dict[str, bytes]:
    bodies = {
        # The body that held the event loop for 20-29 s: a quadratic regex over escaped quotes.
        "escaped quotes, 64 KB": b'"' + b'\\"' * 32_000 + b"[" * 65,
        "escaped quotes, 1 MB": b'"' + b'\\"' * (LIMIT // 2 - 100) + b"[" * 65,
        "escaped backslashes and quotes": b'["' + b'\\\\\\"' * (LIMIT // 4 - 100) + b"[" * 65,
        "lone escaped surrogate": json.dumps(session_body("s-surrogate", Title="\ud800")).encode(),
        "surrogate bytes (CESU-8)": b'{"SessionId":"s","Title":"\xed\xa0\x80"}',
        "NUL in text": json.dumps(session_body("s-nul", Title="a\u0000b")).encode(),
        "a 100,000-digit number": b'{"SessionId":' + b"9" * 100_000 + b"}",
        "a number beyond floats": b'{"SessionId":1e999999,"Title":-1e999999}',
        "a 1 MB string": json.dumps({"SessionId": "s-long", "Title": "x" * (LIMIT - 40)}).encode(),
        "over the limit": json.dumps({"Title": "x" * LIMIT}).encode(),
        "just over the nesting limit": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        "unterminated nesting": b"[" * 200_000,
        "not JSON at all": b"\x00\xff" * 1_000,
    }
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        for bom in (False, True):
            bodies[f"nested 5,000 deep, {encoding}{' with BOM' if bom else ''}"] = encoded(DEEP, encoding, bom)
    return bodies


CORPUS = corpus()


@dataclass
class HealthWatch:
    """Polls /healthz on its own connection until stopped; every answer's time is kept."""

    url: str
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx2.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                answer = client.get(f"{self.url}/healthz")
                self.times.append(time.monotonic() - started)
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text[:100]}")
                self._stop.wait(0.02)

    @contextmanager
    def watching(self) -> Iterator[HealthWatch]:
        thread = threading.Thread(target=self.run, name="healthz-watch")
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)


def body_routes(app: Any) -> list[tuple[str, str]]:
    return [(method, path) for method, path in all_routes(app) if method in ("POST", "PUT", "PATCH")]


def assert_refused_in_the_routes_format(path: str, answer: httpx2.Response) -> None:
    what = f"{path}: {answer.status_code} {answer.headers.get('content-type')} {answer.text[:200]!r}"
    if path.startswith("/console"):
        signed_out = answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        assert signed_out or (400 <= answer.status_code < 500 and answer.headers["content-type"].startswith(
            "text/html")), what
        return
    assert 400 <= answer.status_code < 500, what
    body = answer.json()
    if path == "/oauth/token":
        assert body["error"] in ("invalid_request", "invalid_client", "unsupported_grant_type"), what
        assert body["error_description"], what
    elif path.startswith("/webhooks/"):
        assert isinstance(body["error"], str) and body["error"], what
    else:
        assert body["status"] == "ValidationError" and body["error"]["code"] == answer.status_code, what
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"], what


def test_every_hostile_body_is_refused_in_format_by_every_route_while_health_answers(
        live_server: str, app: Any, db: Db) -> None:
    created = db.create_connection("acme")
    routes = body_routes(app)
    assert ("POST", "/session") in routes and ("POST", "/webhooks/{connection}") in routes
    assert any(path.startswith("/console") for _, path in routes)
    before = db.snapshot()
    slow: list[str] = []
    with HealthWatch(live_server).watching() as health, \
            httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=30) as lms:
        for method, path in routes:
            for name, body in CORPUS.items():
                for content_type in ("application/json", None):
                    started = time.monotonic()
                    answer = lms.request(method, concrete(path), content=body,
                                         headers={"content-type": content_type} if content_type else {})
                    if time.monotonic() - started > ANSWER_BOUND_SECONDS:
                        slow.append(f"{method} {path} {name}: {time.monotonic() - started:.2f} s")
                    assert_refused_in_the_routes_format(path, answer)
    assert db.snapshot() == before
    assert not slow, slow
    assert not health.failures, health.failures
    assert len(health.times) > 20
    assert max(health.times) < HEALTH_BOUND_SECONDS, sorted(health.times)[-5:]


@pytest.mark.parametrize("target", ["/oauth/token", "/session", "/instructor", "/webhooks/acme"])
def test_the_body_that_stalled_the_server_is_refused_at_once_without_credentials(live_server: str, db: Db,
                                                                                 target: str) -> None:
    """The outside test's finding: a 64 KB body, anonymous, held every request behind it for 20-29 s."""
    db.create_connection("acme")
    stall = b'"' + b'\\"' * 32_000 + b"[" * 65
    with HealthWatch(live_server).watching() as health:
        started = time.monotonic()
        answer = httpx2.post(f"{live_server}{target}", content=stall, headers={"content-type": "application/json"},
                             timeout=60)
        elapsed = time.monotonic() - started
    assert 400 <= answer.status_code < 500, answer.text
    assert elapsed < ANSWER_BOUND_SECONDS, elapsed
    assert max(health.times, default=0) < HEALTH_BOUND_SECONDS


@pytest.mark.parametrize("target", ["/oauth/token", "/session"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_json_in_utf16_or_utf32_is_refused_asking_for_utf8(client: TestClient, db: Db, target: str,
                                                           encoding: str) -> None:
    created = db.create_connection("acme")
    document = {"grant_type": "client_credentials", "client_id": created["username"],
                "client_secret": created["password"]} if target == "/oauth/token" else session_body("s-16")
    before = db.snapshot()
    for body in (json.dumps(document).encode(encoding), DEEP.encode(encoding)):
        answer = client.post(target, content=body, headers={"content-type": "application/json"},
                             auth=(created["username"], created["password"]))
        assert answer.status_code == 400, answer.text
        message = answer.json().get("error_description") or answer.json()["error"]["message"]
        assert encoding.upper() in message and "UTF-8" in message, message
    assert db.snapshot() == before


def test_a_utf8_byte_order_mark_is_ignored(client: TestClient, db: Db) -> None:
    created = db.create_connection("acme")
    answer = client.post("/session", content=b"\xef\xbb\xbf" + json.dumps(session_body("s-bom")).encode(),
                         headers={"content-type": "application/json"}, auth=(created["username"], created["password"]))
    assert answer.status_code == 200, answer.text


def raw_request(url: str, request: bytes) -> tuple[bytes, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_an_overlong_url_is_refused_in_the_envelope(live_server: str) -> None:
    head, body = raw_request(live_server, b"DELETE /session/x?LoId=" + b"a" * 70_000
                             + b" HTTP/1.1\r\nHost: vilt.test\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"content-type: application/json" in head.lower()
    envelope = json.loads(body)
    assert envelope["status"] == "ValidationError" and envelope["error"]["code"] == 400
    assert "64 KB" in envelope["error"]["message"] and envelope["correlationId"]
    # The server is unharmed: the next request is served as usual.
    assert httpx2.get(f"{live_server}/healthz", timeout=10).status_code == 200
