"""Serving an ASGI app on a local port in a background thread: provider simulators, webhook receivers in
tests, and the connector itself in tests that need real HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """uvicorn checks for shutdown every 100 ms; tests start and stop servers often, so check every 10 ms."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


class BackgroundServer:
    """Any ASGI app served by uvicorn on a free local port in a daemon thread (also handy for webhook receivers)."""

    def __init__(
        self, app: ASGIApp | None = None, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False
    ) -> None:
        self.app = app  # may be set after construction, once the URL (known at bind time) has been used
        self.host = host
        self.lifespan = lifespan
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))  # bound now, so the URL is known before the server runs
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _uvicorn(self, *, quiet: bool = True) -> _Server:
        if self.app is None:
            raise RuntimeError("no app to serve")
        config = uvicorn.Config(self.app, log_level="warning" if quiet else "info", access_log=not quiet,
                                lifespan="on" if self.lifespan else "off", timeout_graceful_shutdown=1)
        return _Server(config)

    def run(self) -> None:
        """Serve in this thread, with access logs, until Ctrl-C or SIGTERM (the demo command)."""
        try:
            self._uvicorn(quiet=False).run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self) -> None:
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True,
                                        name=f"uvicorn-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for idle keep-alive connections of test clients
            self._thread.join(timeout=10)
        self._socket.close()
