"""Helpers the benchmarks share: servers started in their own process group and always stopped, readiness,
small HTTP requests, peak memory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """Stops the run with a message for the operator."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(stack: ExitStack, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group; the stack stops it however the run ends."""
    with log.open("wb") as handle:
        process = subprocess.Popen(command, env=env, cwd=log.parent, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    stack.callback(stop, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def request(method: str, url: str, authorization: str | None = None,
            body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if authorization:
        headers["Authorization"] = authorization
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{url} never came up; the server exited:\n{log.read_text()[-2000:]}")
        try:
            if request("GET", url)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout:.0f}s:\n{log.read_text()[-2000:]}")


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
