"""Helpers the benchmarks share: servers started in their own process group and always stopped, readiness,
small HTTP requests, peak memory; a `viltbridge` environment of the run's own, connections, fresh PostgreSQL
databases, service versions, and where results are written."""

from __future__ import annotations

import base64
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """Stops the run with a message for the operator."""


# How long a `viltbridge serve` or `viltbridge worker` may take to come up, and a setup request to answer. Not part
# of any figure, so generous: on a busy machine (the test suite's tiny run beside other work) the imports and
# migrations of a fresh process take tens of seconds, and a benchmark that gave up on them would fail for nothing.
STARTUP_SECONDS = 120.0
SETUP_REQUEST_SECONDS = 60.0


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
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method),
                                    timeout=SETUP_REQUEST_SECONDS) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = STARTUP_SECONDS) -> None:
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
    raise BenchError(f"{url} did not answer within {timeout:.0f}s; if the machine is very busy, run again when it is "
                     f"quieter (its log says how far it got):\n{log.read_text()[-2000:]}")


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# --- shared by every benchmark ------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VILTBRIDGE = str(BIN / "viltbridge")
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def results_dir() -> Path:
    """Where results go: bench/results, or BENCH_RESULTS_DIR (the smoke test writes its tiny runs elsewhere)."""
    return Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")


def write_results(name: str, report: dict[str, Any]) -> Path:
    path = results_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_1min": round(os.getloadavg()[0], 2)}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def viltbridge_env(tmp: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `viltbridge` process of the benchmark's own: no VILTBRIDGE_* of the caller's, its own
    database (SQLite in `tmp` by default) and key, provider simulators on 127.0.0.1 allowed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VILTBRIDGE_")}
    env.update(VILTBRIDGE_DATABASE_URL=database_url or f"sqlite:///{tmp / 'bench.db'}",
               VILTBRIDGE_KEY_FILE=str(tmp / "key"), VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK="1", **extra)
    return env


def create_connection(env: dict[str, str], name: str, provider: str = "link",
                      settings: dict[str, Any] | None = None) -> str:
    """`viltbridge connection create … --json`; returns the LMS's Authorization header for it."""
    return create_connections(env, [(name, provider, settings or {})])[0]


def create_connections(env: dict[str, str], wanted: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Several `viltbridge connection create … --json` (name, provider, settings): the first alone (it migrates the
    database), the others side by side; the LMS's Authorization header for each."""
    def launch(name: str, provider: str, settings: dict[str, Any]) -> subprocess.Popen[str]:
        sets = [f"--set={key}={value}" for key, value in settings.items()]
        return subprocess.Popen([VILTBRIDGE, "connection", "create", name, "--provider", provider, *sets, "--json"],
                                env=env, cwd=Path(env["VILTBRIDGE_KEY_FILE"]).parent, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def answer(process: subprocess.Popen[str], name: str, provider: str) -> str:
        out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            raise BenchError(f"`viltbridge connection create {name} --provider {provider}` failed:\n{err}")
        connection = json.loads(out)
        return "Basic " + b64(f"{connection['username']}:{connection['password']}")

    if not wanted:
        return []
    first = answer(launch(*wanted[0]), *wanted[0][:2])
    rest = [(launch(*item), item) for item in wanted[1:]]
    return [first, *(answer(process, *item[:2]) for process, item in rest)]


def serve(stack: ExitStack, env: dict[str, str], log: Path, *extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`viltbridge serve` on a free port, stopped with the stack; its base URL and process, once it answers."""
    port = free_port()
    server = start(stack, [VILTBRIDGE, "serve", "--host", "127.0.0.1", "--port", str(port), *extra], env, log)
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url + "/healthz", server, log)
    return base_url, server


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the run's own, dropped afterwards whatever happens."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin_url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise BenchError(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({exc.__class__.__name__}); start it "
                         "or point BENCH_POSTGRES_URL at one") from exc
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # the server went away: say what to clean up, keep the run's own error
            print(f"warning: could not drop the benchmark database {name} ({exc.__class__.__name__}); drop it "
                  f"with: DROP DATABASE \"{name}\"", file=sys.stderr)
        admin.dispose()


def server_version(url: str) -> str | None:
    """PostgreSQL's or Redis's version, for the summary; None when unreachable."""
    try:
        if url.startswith("redis"):
            import redis

            info = redis.Redis.from_url(url).info("server")
            return str(info["redis_version"])
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        engine = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"))
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        finally:
            engine.dispose()
    except Exception:
        return None
