"""Real `viltbridge` processes for tests that kill, restart or starve them: waiting for a condition, starting
`viltbridge serve` on a free port, and what the published API documents as answers (`/openapi.json`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
from bench.processes import free_port, stop  # the benchmarks start and stop the same processes

__all__ = ["VILTBRIDGE", "documented_statuses", "free_port", "healthy", "process_env", "serving", "start_serve",
           "stop", "wait_for"]

VILTBRIDGE = Path(sys.executable).with_name("viltbridge")


def wait_for(condition: Callable[[], bool], *, seconds: float = 30.0, what: str = "condition",
             explain: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{explain()}")
        time.sleep(0.1)


def healthy(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


def process_env(database_url: str, secret_key: str, **extra: str) -> dict[str, str]:
    """The environment of a `viltbridge` process on this database; loopback provider URLs allowed (simulators)."""
    return {**os.environ, "VILTBRIDGE_DATABASE_URL": database_url, "VILTBRIDGE_SECRET_KEY": secret_key,
            "VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK": "1", **extra}


def start_serve(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`viltbridge serve` on 127.0.0.1:`port` (its own process group, so a kill reaches all of it), healthy."""
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        server = subprocess.Popen([str(VILTBRIDGE), "serve", "--port", str(port), *args],
                                  env={"VILTBRIDGE_PUBLIC_URL": url, **env}, cwd=log.parent, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    # `viltbridge serve` imports the whole application before it listens: seconds, more on a busy machine.
    wait_for(lambda: healthy(url) or server.poll() is not None, seconds=120, what=f"viltbridge serve on {url}",
             explain=lambda: log.read_text(errors="replace")[-3000:])
    assert server.poll() is None, f"viltbridge serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
    return server


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    server = start_serve(env, port, log, *args)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def documented_statuses(schema: dict[str, Any], method: str, path: str) -> set[int]:
    """The HTTP statuses `/openapi.json` lists for one operation (`path` as templated there)."""
    responses = schema["paths"][path][method.lower()]["responses"]
    return {int(code) for code in responses if code.isdigit()}
