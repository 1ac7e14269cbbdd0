"""`make bench`: throughput and latency of the launch endpoint against a bare Starlette endpoint, in one run.

Sets up its own database and key in a temp dir, starts `viltbridge serve`, creates a connection and a session,
then loads `GET /session/{SessionId}/user/{base64EncodedEmail}/url` with wrk (many learner emails, HTTP Basic),
does the same against bench/bare_app.py under identical uvicorn settings, and writes bench/results/launch.json.

Environment: BENCH_SECONDS (per target, default 10), BENCH_WARMUP_SECONDS (2), BENCH_CONNECTIONS (64),
BENCH_THREADS (wrk threads, 2), BENCH_EMAILS (distinct learner emails, 1000).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.processes import BenchError, free_port, peak_rss_mib, request, start, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "launch.json"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
EMAILS = int(os.environ.get("BENCH_EMAILS", "1000"))
TARGET_RATIO = 0.5
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
    encoded = (base64.b64encode(f"learner-{n}@example.com".encode()).decode() for n in range(EMAILS))
    return [f"/session/{SESSION_ID}/user/{email}/url" for email in encoded]


def lua_script(path: Path, paths: list[str], authorization: str) -> Path:
    path.write_text(LUA % {"paths": ",".join(json.dumps(p) for p in paths), "authorization": authorization})
    return path


def bench_launch(stack: ExitStack, wrk: str, tmp: Path) -> tuple[dict[str, Any], int]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VILTBRIDGE_")}
    env.update(VILTBRIDGE_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}", VILTBRIDGE_KEY_FILE=str(tmp / "key"))
    created = subprocess.run([str(BIN / "viltbridge"), "connection", "create", "bench", "--json"], env=env,
                             cwd=tmp, capture_output=True, text=True)
    if created.returncode != 0:
        raise BenchError(f"`viltbridge connection create` failed:\n{created.stderr}")
    connection = json.loads(created.stdout)
    credentials = f"{connection['username']}:{connection['password']}".encode()
    authorization = "Basic " + base64.b64encode(credentials).decode()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp / "viltbridge.log"
    server = start(stack, [str(BIN / "viltbridge"), "serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    wait_ready(base_url + "/healthz", server, log)

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
    result["peak_rss_mib"] = peak_rss_mib(server.pid)
    stop(server)
    return result, len(body)


def bench_bare(stack: ExitStack, wrk: str, tmp: Path, body_bytes: int) -> dict[str, Any]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp / "bare.log"
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(port), str(body_bytes)]
    server = start(stack, command, dict(os.environ), log)
    paths = learner_paths()
    wait_ready(base_url + paths[0], server, log)
    status, body = request("GET", base_url + paths[0])
    if status != 200:
        raise BenchError(f"the bare app answered {status}: {body[:500]!r}")
    # The same Authorization header, so both servers parse the same requests.
    result = measure(wrk, lua_script(tmp / "bare.lua", paths, "Basic YmVuY2g6YmVuY2g="), base_url)
    result["response_bytes"] = len(body)
    result["peak_rss_mib"] = peak_rss_mib(server.pid)
    stop(server)
    return result


def summary(report: dict[str, Any]) -> str:
    lines = [f"launch benchmark ({report['load']['connections']} connections, {report['load']['seconds']}s each, "
             f"{report['machine']['nproc']} cores, SQLite)"]
    for name in ("launch", "bare"):
        result, latency = report[name], report[name]["latency_ms"]
        errors = sum(result["errors"].values())
        lines.append(f"  {name:7} {result['requests_per_second']:9.1f} req/s   p50 {latency['p50']:7.2f} ms"
                     f"   p99 {latency['p99']:7.2f} ms   peak RSS {result['peak_rss_mib']} MiB"
                     + (f"   ERRORS {errors}" if errors else ""))
    verdict = "meets" if report["meets_target"] else "BELOW"
    lines.append(f"  ratio   {report['ratio']:.3f} ({verdict} the {TARGET_RATIO} target)")
    lines.append(f"  written to {RESULTS.relative_to(ROOT)}")
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the ExitStack still stops the servers
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    date = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        wrk = ensure_wrk()
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-bench-")))
            launch, body_bytes = bench_launch(stack, wrk, tmp)
            bare = bench_bare(stack, wrk, tmp, body_bytes)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    ratio = round(launch["requests_per_second"] / bare["requests_per_second"], 3)
    report = {
        "benchmark": f"GET {LAUNCH_PATH} (launch) vs a bare Starlette JSON endpoint (bare)",
        "date": date,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)},
        "database": "sqlite",
        "load": {"tool": wrk_version(wrk), "connections": CONNECTIONS, "threads": THREADS, "seconds": SECONDS,
                 "warmup_seconds": WARMUP_SECONDS, "distinct_emails": EMAILS},
        "launch": launch,
        "bare": bare,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "duration_seconds": round(time.monotonic() - began, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    if load_before > 0.5:
        print(f"warning: the machine was busy before the run (1-min load {load_before:.2f}); results are noisy",
              file=sys.stderr)
    if sum(launch["errors"].values()) or sum(bare["errors"].values()):
        print("bench failed: some requests failed or timed out; see the errors in the results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
