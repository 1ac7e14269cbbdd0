"""A provider's front door for fault tests: the simulator's own app served on a port of its own, which a test can
shut (connection refused), slow down past the connector's timeouts, make answer 429, or make answer garbage
(malformed JSON, or JSON of the wrong shape) after the simulator has done the work. Being in front of the
simulator, it plays the same faults for every provider."""

from __future__ import annotations

import asyncio
import json
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
