"""`make bench`: throughput and latency of the launch endpoint against a bare Starlette endpoint, in one run, on
SQLite and PostgreSQL, with 1 and 2 server processes.

For each database and process count: a database of the run's own (a SQLite file in a temp dir; a fresh PostgreSQL
database, dropped afterwards), `viltbridge serve --workers N`, one connection and one session, then wrk loads
`GET /session/{SessionId}/user/{base64EncodedEmail}/url` (many learner emails, HTTP Basic). The bare Starlette app
(bench/bare_app.py, identical uvicorn settings) keeps running beside them and is measured right after each launch
target with the same process count; each launch / bare ratio compares those two measurements, seconds apart.
Writes bench/results/launch.json.

Environment: BENCH_SECONDS (per target, default 10), BENCH_WARMUP_SECONDS (2), BENCH_CONNECTIONS (64),
BENCH_THREADS (wrk threads, 2), BENCH_EMAILS (distinct learner emails, 1000), BENCH_LAUNCH_DATABASES
(sqlite,postgresql), BENCH_LAUNCH_PROCESSES (1,2), BENCH_POSTGRES_URL (the server to create the database on).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.processes import (
    ROOT,
    BenchError,
    b64,
    create_connection,
    free_port,
    fresh_postgres_database,
    machine,
    peak_rss_mib,
    request,
    serve,
    start,
    viltbridge_env,
    wait_ready,
    write_results,
)

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
EMAILS = int(os.environ.get("BENCH_EMAILS", "1000"))
DATABASES = [name.strip() for name in os.environ.get("BENCH_LAUNCH_DATABASES", "sqlite,postgresql").split(",")]
PROCESSES = [int(count) for count in os.environ.get("BENCH_LAUNCH_PROCESSES", "1,2").split(",")]
TARGET_RATIO = 0.5  # the target: the launch endpoint at half the bare app's throughput or better
SESSION_ID = "bench-1"
LAUNCH_PATH = "/session/{SessionId}/user/{base64EncodedEmail}/url"

# wrk calls request() for every request and done() once with the merged statistics; done() prints them as JSON
# (latencies in µs), which avoids parsing the unit-suffixed text of `wrk --latency`.
LUA = """
local paths = {%(paths)s}
local counter = 0
local next_thread = 0
wrk.headers["Authorization"] = "%(authorization)s"

function setup(thread)
  thread:set("counter", next_thread * 7919)
  next_thread = next_thread + 1
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[counter %% #paths + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%%d,"duration_us":%%d,"bytes":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,'
    .. '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""




def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError("wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y wrk`, "
                         "macOS: `brew install wrk`) and run `make bench` again.")
    print("wrk not found; installing it with apt-get ...", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        subprocess.run(install, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("Installing wrk with apt-get failed; run `apt-get update && apt-get install -y wrk`.")
    return found


def wrk_version(wrk: str) -> str:
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()
    return output[0].split(" [")[0] if output else "wrk"


def run_wrk(wrk: str, script: Path, base_url: str, seconds: int) -> dict[str, Any]:
    command = [wrk, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(script), base_url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return raw
    raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def measure(wrk: str, script: Path, base_url: str) -> dict[str, Any]:
    if WARMUP_SECONDS > 0:
        run_wrk(wrk, script, base_url, WARMUP_SECONDS)
    raw = run_wrk(wrk, script, base_url, SECONDS)
    errors = {name: raw[name] for name in ("connect", "read", "write", "status", "timeout")}
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms": {name: round(raw[f"{name}_us"] / 1000, 2) for name in ("p50", "p99", "max")},
        "errors": errors,
    }


def learner_paths() -> list[str]:
    """Launch URLs for EMAILS different learners."""
    return [f"/session/{SESSION_ID}/user/{b64(f'learner-{n}@example.com')}/url" for n in range(EMAILS)]


def lua_script(path: Path, paths: list[str], authorization: str) -> Path:
    path.write_text(LUA % {"paths": ",".join(json.dumps(p) for p in paths), "authorization": authorization})
    return path


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
    elif kind == "postgresql":
        with fresh_postgres_database("vb_bench_launch") as url:
            yield url
    else:
        raise BenchError(f"BENCH_LAUNCH_DATABASES names '{kind}'; use sqlite and/or postgresql")


def server_pids(base_pid: int) -> list[int]:
    """The server process and its children (uvicorn's worker processes)."""
    children = Path(f"/proc/{base_pid}/task/{base_pid}/children")
    try:
        return [base_pid, *map(int, children.read_text().split())]
    except OSError:
        return [base_pid]


def total_peak_rss(base_pid: int) -> float | None:
    peaks = [peak for pid in server_pids(base_pid) if (peak := peak_rss_mib(pid)) is not None]
    return round(sum(peaks), 1) if peaks else None


def bench_launch(wrk: str, kind: str, processes: int) -> tuple[dict[str, Any], int]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-bench-")))
        url = stack.enter_context(database(kind, tmp))
        env = viltbridge_env(tmp, url)
        authorization = create_connection(env, "bench")
        log = tmp / "viltbridge.log"
        base_url, server = serve(stack, env, log, "--workers", str(processes))

        now = datetime.now(UTC).replace(microsecond=0)
        session = {"SessionId": SESSION_ID, "CreatorEmail": "a@example.com", "Title": "Bench",
                   "DateBegin": (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"),
                   "DateEnd": (now + timedelta(minutes=70)).strftime("%Y-%m-%dT%H:%M:%S"),
                   "TimeZone": {"UTCOffset": "+00:00"}}
        status, body = request("POST", base_url + "/session", authorization, session)
        if status != 200:
            raise BenchError(f"POST /session answered {status}: {body[:500]!r}")
        paths = learner_paths()
        status, body = request("GET", base_url + paths[0], authorization)
        if status != 200 or b"joinUrl" not in body:
            raise BenchError(f"the launch endpoint answered {status}: {body[:500]!r}")
        result = measure(wrk, lua_script(tmp / "launch.lua", paths, authorization), base_url)
        result["response_bytes"] = len(body)
        result["peak_rss_mib"] = total_peak_rss(server.pid)
        if any(result["errors"].values()) or server.poll() is not None:
            # Kept in the results: the temporary directory with the server's log goes when this returns.
            result["server_log_tail"] = log.read_text(errors="replace")[-4000:]
            result["server_exit_status"] = server.poll()
        return result, len(body)


@dataclass
class BareServer:
    base_url: str
    process: subprocess.Popen[bytes]
    script: Path
    body_bytes: int


def start_bare(stack: ExitStack, body_bytes: int, processes: int) -> BareServer:
    """The bare app with `processes` processes, kept running for the run: it is measured right after each launch
    target with the same process count, so every ratio compares two measurements a few seconds apart."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-bench-bare-")))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp / "bare.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench.bare_app", str(port), str(body_bytes), str(processes)]
    server = start(stack, command, env, log)
    paths = learner_paths()
    wait_ready(base_url + paths[0], server, log)
    status, body = request("GET", base_url + paths[0])
    if status != 200:
        raise BenchError(f"the bare app answered {status}: {body[:500]!r}")
    # The same Authorization header, so both servers parse the same requests.
    return BareServer(base_url, server, lua_script(tmp / "bare.lua", paths, "Basic YmVuY2g6YmVuY2g="), len(body))


def bench_bare(wrk: str, bare: BareServer) -> dict[str, Any]:
    result = measure(wrk, bare.script, bare.base_url)
    result["response_bytes"] = bare.body_bytes
    result["peak_rss_mib"] = total_peak_rss(bare.process.pid)
    return result


def summary(report: dict[str, Any]) -> str:
    load = report["load"]
    lines = [f"launch benchmark ({load['connections']} connections, {load['seconds']}s each, "
             f"{report['machine']['nproc']} cores)"]
    for name, result in report["results"].items():
        latency, errors = result["latency_ms"], sum(result["errors"].values())
        lines.append(f"  {name:22} {result['requests_per_second']:9.1f} req/s   p50 {latency['p50']:7.2f} ms"
                     f"   p99 {latency['p99']:7.2f} ms   peak RSS {result['peak_rss_mib']} MiB"
                     + (f"   ERRORS {errors}" if errors else ""))
    for name, ratio in report["ratios"].items():
        lines.append(f"  ratio {name:40} {ratio:.3f}")
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the ExitStack still stops the servers
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, dict[str, Any]] = {}
    # The bare app measured right after each launch target (same process count): a busy machine changes from one
    # minute to the next, and a ratio of two measurements seconds apart is steadier than one of a minute apart.
    bare_after: dict[str, dict[str, Any]] = {}
    try:
        wrk = ensure_wrk()
        with ExitStack() as stack:
            bare_servers: dict[int, BareServer] = {}
            for kind in DATABASES:
                for processes in PROCESSES:
                    name = f"launch_{kind}_{processes}p"
                    results[name], body_bytes = bench_launch(wrk, kind, processes)
                    if processes not in bare_servers:
                        bare_servers[processes] = start_bare(stack, body_bytes, processes)
                    bare_after[name] = bench_bare(wrk, bare_servers[processes])
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    for processes in PROCESSES:  # the bare figure shown per process count: its median measurement
        runs = sorted((run for name, run in bare_after.items() if name.endswith(f"_{processes}p")),
                      key=lambda run: run["requests_per_second"])
        results[f"bare_{processes}p"] = {**runs[len(runs) // 2], "measurements": len(runs)}
    rps = {name: result["requests_per_second"] for name, result in results.items()}
    ratios = {f"launch_{kind}_{p}p / bare_{p}p": round(
        rps[f"launch_{kind}_{p}p"] / bare_after[f"launch_{kind}_{p}p"]["requests_per_second"], 3)
        for kind in DATABASES for p in PROCESSES}
    if len(PROCESSES) > 1:
        few, many = min(PROCESSES), max(PROCESSES)
        for name in [*(f"launch_{kind}" for kind in DATABASES), "bare"]:
            ratios[f"{name}_{many}p / {name}_{few}p"] = round(rps[f"{name}_{many}p"] / rps[f"{name}_{few}p"], 3)
    if "postgresql" in DATABASES and "sqlite" in DATABASES:
        for p in PROCESSES:
            ratios[f"launch_postgresql_{p}p / launch_sqlite_{p}p"] = round(
                rps[f"launch_postgresql_{p}p"] / rps[f"launch_sqlite_{p}p"], 3)
    targets = {name: {"ratio": ratio, "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO}
               for name, ratio in ratios.items() if name.startswith("launch_") and "/ bare_" in name}
    report = {
        "benchmark": f"GET {LAUNCH_PATH} (launch) vs a bare Starlette JSON endpoint (bare), per database and "
                     "number of server processes",
        "date": date,
        "machine": {**machine(), "load_1min_before": round(load_before, 2)},
        "load": {"tool": wrk_version(wrk), "connections": CONNECTIONS, "threads": THREADS, "seconds": SECONDS,
                 "warmup_seconds": WARMUP_SECONDS, "distinct_emails": EMAILS},
        "databases": DATABASES,
        "processes": PROCESSES,
        "results": results,
        "bare_after": bare_after,
        "ratios": ratios,
        "targets": targets,
        "duration_seconds": round(time.monotonic() - began, 1),
    }
    path = write_results("launch", report)
    print(summary(report))
    print(f"  written to {path}")
    if any(sum(result["errors"].values()) for result in results.values()):
        print("bench failed: some requests failed or timed out; see the errors in the results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
