"""The HTTP protocol `viltbridge serve` runs (web/http_protocol.py): a response's head leaves with its body in one
write, and nothing about what reaches the client changes: HEAD answers, streamed bodies, large bodies, pipelined
requests and `Expect: 100-continue` arrive whole and in order."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from viltbridge.providers.serving import BackgroundServer
from viltbridge.web.http_protocol import ENVELOPE_HTTP_PROTOCOL, HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def joining(transport: RecordingTransport) -> HeadWithBody:
    return HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    transport = RecordingTransport()
    response = joining(transport)
    response.write(HEAD)
    assert transport.writes == []
    response.write(b"{}")
    assert transport.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert transport.writes == [HEAD + b"{}"]  # nothing left to flush


async def test_a_head_without_a_body_leaves_when_the_event_loop_turns() -> None:
    transport = RecordingTransport()
    joining(transport).write(HEAD)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]


async def test_only_the_first_write_is_held_and_order_is_kept() -> None:
    transport = RecordingTransport()
    response = joining(transport)
    for chunk in (HEAD, b"a", b"b", b"c"):
        response.write(chunk)
    assert transport.writes == [HEAD + b"a", b"b", b"c"]


async def test_a_large_body_is_not_copied_onto_the_head() -> None:
    transport = RecordingTransport()
    response = joining(transport)
    body = b"x" * (HeadWithBody.JOIN_AT_MOST + 1)
    response.write(HEAD)
    response.write(body)
    assert transport.writes == [HEAD, body]


async def test_closing_sends_a_held_head_first() -> None:
    transport = RecordingTransport()
    response = joining(transport)
    response.write(HEAD)
    response.close()
    assert transport.writes == [HEAD] and transport.closed
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]


# --- through uvicorn, over real sockets --------------------------------------------------------------------------

class Gate:
    """Opened by a request of its own (on the server's event loop), so a streamed body waits for the test."""

    event: asyncio.Event | None = None

    @classmethod
    def get(cls) -> asyncio.Event:
        if cls.event is None:
            cls.event = asyncio.Event()
        return cls.event


async def open_gate(_: Request) -> Response:
    Gate.get().set()
    return PlainTextResponse("open")


async def small(_: Request) -> Response:
    return JSONResponse({"status": "Success"})


async def large(_: Request) -> Response:
    return PlainTextResponse("y" * 300_000)


async def echo(request: Request) -> Response:
    return PlainTextResponse(await request.body())


async def slow_stream(_: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        await Gate.get().wait()  # opened by the test once it holds the response's head
        yield b"first,"
        yield b"second"

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    app = Starlette(routes=[Route("/small", small, methods=["GET", "HEAD"]), Route("/large", large),
                            Route("/echo", echo, methods=["POST"]), Route("/stream", slow_stream),
                            Route("/open", open_gate)])
    server = BackgroundServer(app, http=ENVELOPE_HTTP_PROTOCOL)
    server.start()
    yield server.url
    server.stop()


def test_small_large_and_head_answers_arrive_whole(served: str) -> None:
    with httpx2.Client(base_url=served, timeout=10) as client:
        for _ in range(3):  # one connection, kept alive
            assert client.get("/small").json() == {"status": "Success"}
            assert client.get("/large").text == "y" * 300_000
            head = client.head("/small")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(b'{"status":"Success"}'))


def test_a_streamed_head_is_not_held_back_waiting_for_its_body(served: str) -> None:
    with httpx2.Client(base_url=served, timeout=10) as client, client.stream("GET", "/stream") as response:
        assert response.status_code == 200  # the head arrived while the body had not begun
        assert httpx2.get(served + "/open", timeout=10).text == "open"
        assert response.read() == b"first,second"


def test_pipelined_requests_are_answered_in_order(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    requests = b"".join(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for path in ("/small", "/large", "/small"))
    requests += b"HEAD /small HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(requests)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 5
    answers = received.split(b"HTTP/1.1 200 OK")[1:]
    assert answers[0].endswith(b'{"status":"Success"}') and answers[2].endswith(b'{"status":"Success"}')
    assert answers[1].endswith(b"y" * 300_000)
    assert answers[3].endswith(b"\r\n\r\n")  # HEAD: no body
    assert answers[4].endswith(b'{"status":"Success"}')


def test_expect_100_continue_is_answered_before_the_body_is_sent(served: str) -> None:
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                           b"Connection: close\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        connection.sendall(b"hello")
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert b"HTTP/1.1 200 OK" in received and received.endswith(b"hello")
