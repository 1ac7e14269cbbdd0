"""Hostile input over real HTTP (the conformance kit's hostile cases): each is refused or stored literally, in the
documented envelope, never with a 5xx, and a refusal changes nothing in the database.

Requests are written byte for byte on a socket, because HTTP clients normalise exactly what is under test here
(dot segments, header values, chunked framing)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.conftest import Db, Lms, b64, session_body
from viltbridge.core.json_text import MAX_DEPTH as MAX_JSON_DEPTH

JSON = {"Content-Type": "application/json"}


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """Plays Cornerstone with exact bytes on the wire: one connection per request, nothing normalised."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        parts = urlsplit(base_url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.authorization = b"Basic " + base64.b64encode(f"{username}:{password}".encode())

    def send(self, method: str, target: bytes | str, body: bytes | None = None, *,
             headers: dict[str, str] | None = None, raw_headers: list[bytes] | None = None,
             authorization: bytes | None = None, chunked: bool = False, correlation: bytes = b"hostile-1") -> Reply:
        target = target.encode() if isinstance(target, str) else target
        authorization = self.authorization if authorization is None else authorization  # b"": send none
        lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: vilt.test", b"Connection: close",
                 b"correlationId: " + correlation] + ([b"Authorization: " + authorization] if authorization else [])
        lines += [f"{name}: {value}".encode() for name, value in (headers or {}).items()]
        lines += raw_headers or []
        payload = b""
        if body is not None and chunked:
            lines.append(b"Transfer-Encoding: chunked")
            step = 64 * 1024
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                               for i in range(0, len(body), step)) + b"0\r\n\r\n"
        elif body is not None:
            lines.append(b"Content-Length: " + str(len(body)).encode())
            payload = body
        with socket.create_connection(self.address, timeout=10) as sock:
            # The server may answer and close before reading everything (a refused large body).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + payload)
            response = HTTPResponse(sock)
            response.begin()
            return Reply(response.status, response.getheaders(), response.read())

    def post_json(self, target: str, document: Any, **kwargs: Any) -> Reply:
        return self.send("POST", target, json.dumps(document).encode(), headers=JSON, **kwargs)


@pytest.fixture
def wire(live_server: str, connection: dict[str, str]) -> RawClient:
    return RawClient(live_server, connection["username"], connection["password"])


@pytest.fixture
def seeded(wire: RawClient) -> RawClient:
    assert wire.post_json("/session", session_body("known")).status == 200
    return wire


def assert_envelope(reply: Reply, status: int, *words: str, correlation: str = "hostile-1") -> str:
    """The documented error envelope, HTTP status = error.code, a message naming what to fix; returns it."""
    assert reply.status == status, reply.body
    body = reply.json()
    assert body["status"] == "ValidationError"
    assert body["error"]["code"] == status
    assert body["correlationId"] == correlation
    message: str = body["error"]["message"]
    assert "Traceback" not in message and "Error(" not in message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def session_rows(db: Db) -> dict[str, dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT external_id, title, description, lo_id, status FROM sessions"))
        return {row.external_id: dict(row._mapping) for row in rows}


# --- oversized bodies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked, no content-length"])
@pytest.mark.parametrize("method, target", [("POST", "/session"), ("PUT", "/session/known"),
                                            ("POST", "/instructor"), ("PUT", "/instructor")])
def test_a_body_over_the_limit_is_refused_with_413(seeded: RawClient, db: Db, settings: Any, method: str,
                                                   target: str, chunked: bool) -> None:
    huge = json.dumps(session_body("known", Description="x" * settings.max_body_bytes)).encode()
    before = db.snapshot()
    reply = seeded.send(method, target, huge, headers=JSON, chunked=chunked)
    assert_envelope(reply, 413, f"larger than {settings.max_body_bytes // 1000} kB", "documented fields")
    assert db.snapshot() == before


def test_a_chunked_body_under_the_limit_is_accepted(wire: RawClient, db: Db) -> None:
    reply = wire.send("POST", "/session", json.dumps(session_body("chunky")).encode(), headers=JSON, chunked=True)
    assert reply.status == 200, reply.body
    assert "chunky" in session_rows(db)


# --- deep JSON ---------------------------------------------------------------------------------------------

DEEP_BODIES = {
    "10k nested arrays": b"[" * 10_000 + b"]" * 10_000,
    "10k nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "deep inside a field": b'{"SessionId":"deep","Title":' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "unterminated": b"[" * 10_000,
    "just over the limit": b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
}


@pytest.mark.parametrize("target", ["/session", "/instructor", "/oauth/token"])
@pytest.mark.parametrize("case", sorted(DEEP_BODIES))
def test_deeply_nested_json_is_refused_before_it_is_parsed(seeded: RawClient, db: Db, target: str, case: str) -> None:
    before = db.snapshot()
    # debug: true makes the server log the body too, which must not parse it first.
    reply = seeded.send("POST", target, DEEP_BODIES[case], headers={**JSON, "debug": "true"})
    if target == "/oauth/token":  # OAuth clients get RFC 6749's error shape
        assert reply.status == 400 and reply.json()["error"] == "invalid_request", reply.body
        assert f"more than {MAX_JSON_DEPTH} levels deep" in reply.json()["error_description"]
    else:
        assert_envelope(reply, 400, f"more than {MAX_JSON_DEPTH} levels deep")
    assert db.snapshot() == before


def test_nesting_within_the_limit_is_judged_by_the_schema(seeded: RawClient, db: Db) -> None:
    depth = MAX_JSON_DEPTH - 2
    nested = json.loads("[" * depth + "]" * depth)
    before = db.snapshot()
    assert_envelope(seeded.post_json("/session", session_body("nested", Title=nested)), 400, "Title must be text")
    # Brackets inside strings are text, not nesting.
    reply = seeded.post_json("/session", session_body("brackets", Description="[{" * 20_000))
    assert reply.status == 200, reply.body
    assert session_rows(db)["brackets"]["description"] == "[{" * 20_000
    assert {k: v for k, v in db.snapshot().items() if k != "sessions"} == \
        {k: v for k, v in before.items() if k != "sessions"}


# --- invalid UTF-8 and text no database can store ----------------------------------------------------------

@pytest.mark.parametrize("target", ["/session", "/instructor", "/session/known"])
def test_invalid_utf8_is_refused_with_a_message(seeded: RawClient, db: Db, target: str) -> None:
    body = json.dumps(session_body("known")).encode().replace(b"Safety basics", b"Safety \xff\xfe basics")
    before = db.snapshot()
    message = assert_envelope(seeded.send("PUT" if target.endswith("known") else "POST", target, body, headers=JSON),
                              400, "not valid UTF-8", "byte 0xff")
    assert "There was an error parsing the body" not in message
    assert db.snapshot() == before


@pytest.mark.parametrize("spelling", [b"\\ud800", b"\\udfff x"],
                         ids=["escaped high surrogate", "escaped low surrogate"])
def test_unpaired_surrogates_are_refused_naming_the_field(seeded: RawClient, db: Db, spelling: bytes) -> None:
    before = db.snapshot()
    session = json.dumps(session_body("surrogate")).encode().replace(b"Safety basics", spelling)
    assert_envelope(seeded.send("POST", "/session", session, headers=JSON), 400, "Title contains", "not valid Unicode")
    instructor = b'{"Email":"i@example.com","FirstName":"A' + spelling + b'","LastName":"B"}'
    assert_envelope(seeded.send("POST", "/instructor", instructor, headers=JSON), 400, "FirstName contains")
    assert db.snapshot() == before


def test_surrogates_written_as_bytes_are_not_utf8(seeded: RawClient, db: Db) -> None:
    before = db.snapshot()
    session = json.dumps(session_body("surrogate")).encode().replace(b"Safety basics", b"\xed\xa0\x80")  # CESU-8
    assert_envelope(seeded.send("POST", "/session", session, headers=JSON), 400, "not valid UTF-8", "byte 0xed")
    assert db.snapshot() == before


# --- correlationId -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, echoed", [
    (b"abc%0d%0aSet-Cookie:%20x=1", "abc%0d%0aSet-Cookie:%20x=1"),  # percent-escapes are text, not line breaks
    (b"ab\x85cd\xe2\x80\xa8ef", "abcdef"),  # NEL and U+2028 (as UTF-8 bytes) end lines in some log readers
    (b"tab\there and space", "tabhereandspace"),
    (b'"><script>alert(1)</script>', '"><script>alert(1)</script>'),  # JSON-escaped in the body, no header
    (b"x" * 5_000, "x" * 200),
])
def test_correlation_ids_are_echoed_sanitised_and_never_as_a_header(seeded: RawClient, given: bytes,
                                                                    echoed: str) -> None:
    for reply in (seeded.send("GET", "/session/nope/attendees", correlation=given),
                  seeded.send("POST", "/session", b"x" * 2_000_000, headers=JSON, correlation=given)):
        assert reply.status in (404, 413)
        assert reply.json()["correlationId"] == echoed
        for name, value in reply.headers:
            assert name.lower() not in ("set-cookie", "correlationid")
            assert "\r" not in value and "\n" not in value


def test_a_correlation_id_with_nothing_printable_gets_a_fresh_one(seeded: RawClient) -> None:
    reply = seeded.send("GET", "/session/nope/attendees", correlation=b"\xa0\xa0")
    assert reply.status == 404
    assert len(reply.json()["correlationId"]) == 32


@pytest.mark.parametrize("header", [b"correlationId: a\r\n injected: 1", b"correlationId: a\x00b",
                                    b"correlationId: a\rSet-Cookie: x=1"],
                         ids=["obs-fold", "NUL", "bare CR"])
def test_line_breaks_in_a_correlation_id_never_reach_a_response_header(seeded: RawClient, db: Db,
                                                                       header: bytes) -> None:
    before = db.snapshot()
    reply = seeded.send("POST", "/session", json.dumps(session_body("known", Title="changed")).encode(),
                        headers=JSON, raw_headers=[header], correlation=b"first")
    # The HTTP parser refuses these requests before the application sees them; what matters is that it does.
    assert reply.status == 400
    assert all(name.lower() not in ("injected", "set-cookie") for name, _ in reply.headers)
    assert db.snapshot() == before


# --- path traversal in SessionId ---------------------------------------------------------------------------

@pytest.mark.parametrize("session_id, target", [
    ("..", b"/session/%2E%2E"),
    ("..", b"/session/.%2e"),
    ("..\\..\\windows\\win.ini", b"/session/..%5C..%5Cwindows%5Cwin.ini"),
    ("%2e%2e%2f", b"/session/%252e%252e%252f"),
])
def test_dot_segments_in_a_session_id_are_an_id(wire: RawClient, db: Db, session_id: str, target: bytes) -> None:
    assert wire.post_json("/session", session_body(session_id, Title="dots")).status == 200
    assert session_rows(db)[session_id]["title"] == "dots"
    launch = wire.send("GET", target + b"/user/" + b64("learner@example.com").encode() + b"/url")
    assert launch.status == 200, launch.body
    assert launch.json()["data"]["joinUrl"].startswith("http://testserver/l/")
    updated = wire.send("PUT", target, json.dumps(session_body(session_id, Title="dots again")).encode(),
                        headers=JSON)
    assert updated.status == 200, updated.body
    assert session_rows(db)[session_id]["title"] == "dots again"
    assert wire.send("DELETE", target).status == 200
    assert session_rows(db)[session_id]["status"] == "cancelled"


@pytest.mark.parametrize("climbing", ["../../etc/passwd", "a/b", "../"])
def test_a_session_id_with_a_slash_is_refused_as_it_could_never_be_addressed(wire: RawClient, db: Db,
                                                                             climbing: str) -> None:
    before = db.snapshot()
    assert_envelope(wire.post_json("/session", session_body(climbing)), 400, "SessionId", "contains '/'")
    assert db.snapshot() == before


def test_slashes_and_dot_segments_in_the_path_reach_no_other_operation(seeded: RawClient, db: Db) -> None:
    before = db.snapshot()
    # Decoded, %2F splits the path: these address no route (a documented 404), never a file or another operation.
    for method, target in [("GET", b"/session/..%2F..%2Fetc%2Fpasswd/attendees"),
                           ("PUT", b"/session/..%2F..%2Finstructor"),
                           ("DELETE", b"/session/known%2F..%2F..%2Fhealthz"),
                           ("GET", b"/session/../../etc/passwd/attendees")]:
        body = json.dumps(session_body("known", Title="moved")).encode() if method == "PUT" else None
        reply = seeded.send(method, target, body, headers=JSON if body else None)
        assert_envelope(reply, 404, "no endpoint")
        assert b"root:" not in reply.body
    assert db.snapshot() == before


# --- SQL metacharacters ------------------------------------------------------------------------------------

SQL = ["x' OR '1'='1", "'; DROP TABLE sessions; --", 'a" OR ""="', "%", "_", "\\'; SELECT 1; --", "1; DELETE"]


def test_sql_metacharacters_are_stored_and_returned_literally(wire: RawClient, db: Db) -> None:
    for number, text in enumerate(SQL):
        body = session_body(text, Title=f"{text} title", Description=f"{text}\nline two", LoId=f"lo {text}")
        assert wire.post_json("/session", body).status == 200, text
        names = {"Email": f"o{number}@example.com", "FirstName": f"{text}", "LastName": "O'Brien"}
        assert wire.post_json("/instructor", names).status == 200, text
    rows = session_rows(db)
    assert set(rows) == set(SQL)  # every table still there, each id its own row
    for text in SQL:
        assert rows[text]["title"] == f"{text} title"
        assert rows[text]["description"] == f"{text}\nline two"
        assert rows[text]["lo_id"] == f"lo {text}"
    with db.engine.connect() as conn:
        names = sorted(conn.execute(sa.text("SELECT first_name, last_name FROM instructors")).all())
    assert names == sorted((text, "O'Brien") for text in SQL)


def test_sql_wildcards_in_a_session_id_match_only_themselves(wire: RawClient, db: Db) -> None:
    assert wire.post_json("/session", session_body("a_c")).status == 200
    assert wire.post_json("/session", session_body("50%")).status == 200
    before = db.snapshot()
    for target in (b"/session/abc/attendees", b"/session/50x/attendees", b"/session/%25/attendees",
                   b"/session/x'%20OR%20'1'='1/attendees"):
        assert_envelope(wire.send("GET", target), 404, "not known")
    launch = wire.send("GET", b"/session/50%25/user/" + b64("learner@example.com").encode() + b"/url")
    assert launch.status == 200, launch.body
    assert wire.send("DELETE", b"/session/a_").status == 200  # unknown: succeeds, cancels nothing
    assert db.snapshot() == before


# --- credentials -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    b"Basic \xff\xfe\xfd",  # not even ASCII: used to be a 500
    b"Basic " + base64.b64encode(b"\xff:\xfe"),  # not UTF-8 once decoded
    b"Basic " + base64.b64encode(b"acme\x00:secret"),  # NUL in the username: PostgreSQL refuses it in a query
    b"Basic " + base64.b64encode(b"' OR '1'='1:' OR '1'='1"),
    b"Basic " + base64.b64encode(b"no-colon"),
    b"Bearer vbat.\xff\xfe.x",
    b"Bearer " + b"A" * 5_000,
])
def test_malformed_credentials_are_a_401(seeded: RawClient, db: Db, authorization: bytes) -> None:
    before = db.snapshot()
    reply = seeded.send("GET", "/session/known/attendees", authorization=authorization)
    assert_envelope(reply, 401)
    assert any(name.lower() == "www-authenticate" for name, _ in reply.headers)
    assert db.snapshot() == before


def test_the_token_endpoint_refuses_a_body_it_cannot_read(wire: RawClient, connection: dict[str, str]) -> None:
    body = json.dumps({"grant_type": "client_credentials", "client_id": connection["username"],
                       "client_secret": connection["password"]}).encode()
    reply = wire.send("POST", "/oauth/token", body.replace(b"client_credentials", b"client_\xffcredentials"),
                      headers=JSON, authorization=b"")
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"
    assert "UTF-8" in reply.json()["error_description"]
    good = wire.send("POST", "/oauth/token", body, headers=JSON, authorization=b"")
    assert good.status == 200 and good.json()["token_type"] == "Bearer"


def test_json_nested_inside_a_string_is_refused_naming_the_field(wire: RawClient, db: Db) -> None:
    # Brackets in a string are not nesting to the body check; InstructorEmails parses a string holding a JSON list.
    before = db.snapshot()
    body = session_body("nested-string", InstructorEmails="[" * 50_000 + "]" * 50_000)
    assert_envelope(wire.post_json("/session", body), 400, "InstructorEmails")
    assert db.snapshot() == before


@pytest.mark.parametrize("name", [b"a%00b", b"%ff%fe", b"x'%20OR%20'1'='1", b"..%2F..%2Fetc"])
def test_hostile_connection_names_in_webhook_paths_are_refused(wire: RawClient, db: Db, name: bytes) -> None:
    before = db.snapshot()
    reply = wire.send("POST", b"/webhooks/" + name, b'{"event":"x"}', headers=JSON, authorization=b"")
    assert reply.status == (404 if b"%2F" in name else 403), reply.body  # a slash leaves the webhook route
    assert db.snapshot() == before


def test_line_breaks_a_client_sends_cannot_forge_log_lines(lms: Lms, capsys: pytest.CaptureFixture[str]) -> None:
    from viltbridge.observability import configure_logging

    configure_logging("INFO")  # as `viltbridge serve` does: plain text on (here captured) stderr
    forged = "\r\n2026-03-02 14:00:00 ERROR viltbridge [admin] forged\u2028"
    assert lms.create_session(session_body("logged", DateBegin="soon" + forged)).status_code == 400
    assert lms.call("DELETE", "/session/logged", params={"LoId": "lo" + forged}).status_code == 200
    lines = capsys.readouterr().err.splitlines()
    mentions = [line for line in lines if "forged" in line]
    assert len(mentions) == 2, lines  # one line each, with the break written escaped
    assert all("[corr-123]" in line and "\\r\\n2026-03-02" in line for line in mentions), mentions
