"""Serving an ASGI app on a local port in a background thread (provider simulators, webhook receivers in
tests, and the connector itself in tests that need real HTTP), and what every simulator shares: its clock, its
scripted faults and its scenario route."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


class SimClock:
    """Frozen at `start` (moves only when told), or following real time shifted by whatever was set/advanced."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("the simulator clock needs an aware start time (e.g. tzinfo=UTC)")
        self.frozen = start is not None
        self._anchor = (start or datetime.now(UTC)).astimezone(UTC)
        self._anchor_real = time.time()

    def now(self) -> datetime:
        if self.frozen:
            return self._anchor
        return self._anchor + timedelta(seconds=time.time() - self._anchor_real)

    def set(self, moment: datetime) -> None:
        self._anchor = moment.astimezone(UTC)
        self._anchor_real = time.time()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + timedelta(seconds=seconds))


class _Server(uvicorn.Server):
    """uvicorn checks for shutdown every 100 ms; tests start and stop servers often, so check every 10 ms."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


class BackgroundServer:
    """Any ASGI app served by uvicorn on a free local port in a daemon thread (also handy for webhook receivers)."""

    # Generous: on a loaded machine (a CI runner, a test suite beside other work) starting and stopping take seconds.
    START_SECONDS = 60.0
    STOP_SECONDS = 60.0

    def __init__(
        self, app: ASGIApp | None = None, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False,
        http: str = "auto",
    ) -> None:
        self.app = app  # may be set after construction, once the URL (known at bind time) has been used
        self.host = host
        self.lifespan = lifespan
        self.http = http  # uvicorn's HTTP protocol: a name or an import string
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
                                lifespan="on" if self.lifespan else "off", timeout_graceful_shutdown=1,
                                http=self.http)
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
        deadline = time.monotonic() + self.START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start; its thread ended (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start within {self.START_SECONDS:.0f} s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for idle keep-alive connections of test clients
            self._thread.join(timeout=self.STOP_SECONDS)
        self._socket.close()
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"server on {self.url} did not stop within {self.STOP_SECONDS:.0f} s; a request "
                               "handler that never returns keeps its thread alive")


class SimulatorState(Protocol):
    config: Any

    def close(self) -> None: ...


StateT = TypeVar("StateT", bound=SimulatorState)
ConfigT = TypeVar("ConfigT")
SimulatorT = TypeVar("SimulatorT", bound="SimulatorServer[Any, Any]")


class SimulatorServer(Generic[StateT, ConfigT]):
    """A provider simulator served on a local port. `state` is its world and scenario API; `reset` gives a fresh
    world on the same server (cheaper than a server per test). Each simulator says how to build its state and
    app, and under which name its app finds the state (`app.state.<state_name>`)."""

    state_name: ClassVar[str]
    config_class: ClassVar[type[Any]]

    def __init__(self, config: ConfigT | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = BackgroundServer(host=host, port=port)
        self.state: StateT = self.new_state(config, self._server.url)
        self._app = self.build_app(self.state)
        self._server.app = self._app

    def new_state(self, config: ConfigT | None, base_url: str) -> StateT:
        raise NotImplementedError

    def build_app(self, state: StateT) -> ASGIApp:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self._server.url

    @property
    def config(self) -> ConfigT:
        return self.state.config  # type: ignore[no-any-return]

    def reset(self, config: ConfigT | None = None, **changes: Any) -> StateT:
        """A fresh world (new state, same server). Config fields as keywords change the given (or default) one."""
        if changes:
            config = replace(config or self.config_class(), **changes)  # type: ignore[type-var]
        self.state.close()
        self.state = self.new_state(config, self._server.url)
        setattr(self._app.state, self.state_name, self.state)  # type: ignore[attr-defined]
        return self.state

    def start(self: SimulatorT) -> SimulatorT:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self.state.close()

    def serve_forever(self) -> None:
        """In the foreground, until Ctrl-C (`python -m viltbridge.providers.<name>.simulator`)."""
        self._server.run()

    def __enter__(self: SimulatorT) -> SimulatorT:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @classmethod
    @contextlib.contextmanager
    def running(cls: type[SimulatorT], config: Any = None, **changes: Any) -> Iterator[SimulatorT]:
        """`with XSimulator.running(start=T0) as sim:` — config fields as keywords."""
        if changes:
            config = replace(config or cls.config_class(), **changes)
        simulator = cls(config)
        simulator.start()
        try:
            yield simulator
        finally:
            simulator.stop()


# ---------------------------------------------------------------------------------------------------------------
# Scripted faults


@dataclass
class Fault:
    """A scripted failure: the next `remaining` API calls matching `method` and `path` wait `delay` real seconds,
    then answer `status` in the provider's own error shape (or, with no status, are served normally after the
    delay: a slow provider whose answer the client may have given up on)."""

    status: int | None
    delay: float
    remaining: int
    method: str | None  # None: any method
    path: str  # a substring of the request's path (and query, where the simulator passes it); "": any
    retry_after: str | None = None


class FaultPlan:
    """A simulator's scripted faults, in the order they were added; each call takes the first that matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []

    def add(self, status: int | None = None, *, count: int = 1, delay: float = 0.0, method: str | None = None,
            path: str = "", retry_after: str | None = None) -> dict[str, Any]:
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (4xx or 5xx), or None for a slow answer")
        if status is None and float(delay) <= 0:
            raise ValueError("give a status, a delay, or both")
        with self._lock:
            self.faults.append(Fault(None if status is None else int(status), float(delay), int(count),
                                     method.upper() if method else None, path,
                                     None if retry_after is None else str(retry_after)))
            return {"faults": len(self.faults)}

    def take(self, method: str | None, path: str) -> Fault | None:
        """The first fault matching this call, one of its `count` spent; None when the call is served normally."""
        with self._lock:
            for fault in self.faults:
                if (fault.remaining > 0 and fault.path in path
                        and (fault.method is None or method is None or fault.method == method.upper())):
                    fault.remaining -= 1
                    return fault
            return None

    def clear(self) -> dict[str, Any]:
        with self._lock:
            self.faults.clear()
            return {"faults": 0}

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self.faults))

    def __len__(self) -> int:
        return len(self.faults)

    def __getitem__(self, index: int) -> Fault:
        return self.faults[index]


# ---------------------------------------------------------------------------------------------------------------
# The scenario API every simulator serves


def scenario_route(state_name: str, *, refusals: tuple[type[Exception], ...] = (),
                   allow_get: bool = False) -> Route:
    """`POST /_sim/{method}`: call the simulator state's scenario method (one of its `SCENARIO_METHODS`) with the
    JSON body as keyword arguments (with `allow_get`, a GET passes them as query parameters). Bad arguments, and
    the simulator's own `refusals`, answer 400 (or the refusal's `status`, when it has one) with the reason."""

    expected: tuple[type[Exception], ...] = (KeyError, ValueError, TypeError, *refusals)

    async def scenario(request: Request) -> Response:
        state = getattr(request.app.state, state_name)
        name = request.path_params["method"]
        methods = type(state).SCENARIO_METHODS
        if name not in methods:
            return JSONResponse({"error": f"unknown scenario method {name!r}", "methods": list(methods)},
                                status_code=404)
        kwargs: Any
        if request.method == "GET":
            kwargs = dict(request.query_params)
        else:
            raw = await request.body()
            try:
                kwargs = json.loads(raw) if raw.strip() else {}
            except ValueError:
                kwargs = None
        if not isinstance(kwargs, dict):
            return JSONResponse({"error": "body must be a JSON object of keyword arguments"}, status_code=400)
        try:
            # In a worker thread: scenario calls may post webhooks, and the receiver may call this server back.
            result = await run_in_threadpool(getattr(state, name), **kwargs)
        except expected as exc:
            status = getattr(exc, "status", None) if isinstance(exc, refusals) else None
            return JSONResponse({"error": str(exc).strip("'\"")},
                                status_code=status if isinstance(status, int) and 400 <= status < 500 else 400)
        return JSONResponse(result)

    return Route("/_sim/{method}", scenario, methods=["GET", "POST"] if allow_get else ["POST"])
