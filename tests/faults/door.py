"""A provider's front door for fault tests: the simulator's own app served on a port of its own, which a test can
shut (connection refused), slow down past the connector's timeouts, make answer 429, or make answer garbage
(malformed JSON, or JSON of the wrong shape) after the simulator has done the work. Being in front of the
simulator, it plays the same faults for every provider. `DatabaseDoor` is the database's: a TCP proxy that can stall
the connections open through it, or accept new ones and never answer."""

from __future__ import annotations

import asyncio
import json
import threading
from enum import Enum
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viltbridge.providers.serving import BackgroundServer


class Fault(Enum):
    NONE = "none"
    DOWN = "down"  # nothing listens: connection refused
    SLOW = "slow"  # answers, but only after the connector's attempt timeout
    THROTTLED = "429"  # 429 with a Retry-After longer than any call's budget: the quota is spent for now
    MALFORMED = "malformed-json"  # the call takes effect; its answer is cut off mid-JSON
    WRONG_SHAPE = "wrong-shape"  # the call takes effect; its answer is JSON, but not what the API documents


SLOW_SECONDS = 6.0  # past the interactive attempt timeout (5 s) and the launch budget (3 s)
RETRY_AFTER_SECONDS = "120"


class Door:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.fault = Fault.NONE
        self.calls_hit = 0  # provider calls that met the fault (proof the fault was exercised)
        self._server = BackgroundServer(self)
        self.port = self._server.port
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, fault: Fault) -> None:
        if fault is Fault.DOWN and self.fault is not Fault.DOWN:
            self._server.stop()
        if fault is not Fault.DOWN and self.fault is Fault.DOWN:
            self._server = BackgroundServer(self, port=self.port)  # the same address, back
            self._server.start()
        self.fault = fault

    def close(self) -> None:
        if self.fault is not Fault.DOWN:
            self._server.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.fault
        if scope["type"] != "http" or fault is Fault.NONE:
            await self.app(scope, receive, send)
            return
        self.calls_hit += 1
        if fault is Fault.THROTTLED:
            await _json(send, 429, {"code": 429, "message": "Too many requests."},
                        [(b"retry-after", RETRY_AFTER_SECONDS.encode())])
            return
        if fault is Fault.SLOW:
            await asyncio.sleep(SLOW_SECONDS)
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _garbling(send, fault))


def _garbling(send: Send, fault: Fault) -> Send:
    """The simulator's answer with its body replaced (and its length corrected)."""
    body = b'{"id": 8812, "topic": "Safe' if fault is Fault.MALFORMED else b'{"result": [], "ok": true}'
    started: dict[str, Any] = {}

    async def garbled(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            started.update(message, headers=[*headers, (b"content-length", str(len(body)).encode())])
            return
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            if started.get("status") == 204:  # no body to garble; the answer is what the API says
                await send({**started, "headers": [(k, v) for k, v in started["headers"]
                                                   if k != b"content-length"]})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(started)
            await send({"type": "http.response.body", "body": body})

    return garbled


async def _json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class DatabaseFault(Enum):
    NONE = "none"  # every byte forwarded
    UNANSWERED = "unanswered"  # open connections cut; new ones accepted, read and never answered (a hung server)
    STALLED = "stalled"  # as UNANSWERED, but open connections stay open and carry nothing (a partition)


class DatabaseDoor:
    """A database's front door for fault tests: a TCP proxy to `target` on a port of its own, which a test can
    switch to accept connections and never answer them, or to stall the connections already open, and back.

    A stall holds bytes rather than dropping them, so a connection that outlives it carries on where it stopped, as
    after a healed partition; a connection accepted during a fault was never answered and is closed when it ends."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.fault = DatabaseFault.NONE
        self.connections_hit = 0  # connections accepted during a fault (proof the fault was exercised)
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._forwarded: set[asyncio.StreamWriter] = set()
        self._unanswered: set[asyncio.StreamWriter] = set()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"database-door-{self.port}")
        self._thread.start()

    def set(self, fault: DatabaseFault) -> None:
        asyncio.run_coroutine_threadsafe(self._set(fault), self._loop).result(timeout=10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _set(self, fault: DatabaseFault) -> None:
        self.fault = fault
        if fault is DatabaseFault.NONE:
            self._flowing.set()
            _abort(self._unanswered)
        elif fault is DatabaseFault.STALLED:
            self._flowing.clear()
        else:
            _abort(self._forwarded)

    async def _close(self) -> None:
        self._server.close()
        self._flowing.set()
        _abort(self._forwarded | self._unanswered)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.fault is not DatabaseFault.NONE:
            self.connections_hit += 1
            self._unanswered.add(writer)
            try:
                while await reader.read(65536):
                    pass  # read and discarded: the client's bytes arrive, nothing ever answers
            except OSError:
                pass
            finally:
                self._unanswered.discard(writer)
                writer.close()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._forwarded |= {writer, upstream}
        try:
            await asyncio.gather(self._pump(reader, upstream), self._pump(upstream_reader, writer))
        finally:
            self._forwarded -= {writer, upstream}

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()  # a stall holds what was read until it ends
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


def _abort(writers: set[asyncio.StreamWriter]) -> None:
    for writer in list(writers):
        writer.transport.abort()
