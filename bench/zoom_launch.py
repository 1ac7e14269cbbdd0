"""`make bench` (Zoom part): 500 learners launching within 5 s against the Zoom simulator on the Pro plan's limits.

Starts the simulator (real time, real per-second limits) and `viltbridge serve`, creates a Zoom connection and a
session, then fires the learners' launches on a schedule (one every 10 ms): each asks for its joinUrl as Cornerstone
would and follows it as a browser would, waiting on the holding page when the launch page shows one. Measures the
time from the LMS's request to the provider link, the share of personal (registrant) links, the learners held and
the failures; then does the same with batching off (one registration call per click, the naive path) in the same
run. Writes bench/results/zoom_launch.json.

Environment: BENCH_LEARNERS (500), BENCH_SPREAD_SECONDS (5).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2

from bench.processes import BenchError, free_port, peak_rss_mib, request, start, wait_ready
from viltbridge.providers.zoom.simulator import running_simulator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "zoom_launch.json"
LEARNERS = int(os.environ.get("BENCH_LEARNERS", "500"))
SPREAD = float(os.environ.get("BENCH_SPREAD_SECONDS", "5"))
HOST = "tess@example.com"
HOLDING_REFRESH = re.compile(r'http-equiv="refresh" content="(\d+);')


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


async def crowd(base_url: str, authorization: str, session_id: str) -> dict[str, Any]:
    """Every learner: GET the joinUrl (Cornerstone), then GET it (the browser); time both together."""
    latencies: list[float] = []
    personal = failed = held = 0
    limits = httpx2.Limits(max_connections=LEARNERS, max_keepalive_connections=LEARNERS)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
        async def learner(n: int) -> None:
            nonlocal personal, failed, held
            await asyncio.sleep(n * SPREAD / LEARNERS)
            began = time.perf_counter()
            try:
                asked = await client.get(f"{base_url}/session/{session_id}/user/{b64(f'learner{n}@example.com')}/url",
                                         headers={"Authorization": authorization})
                launch = asked.json()["data"]["joinUrl"]
                redirect = await client.get(launch)
                attempt = 0
                while redirect.status_code == 200 and (wait := HOLDING_REFRESH.search(redirect.text)):
                    held += attempt == 0  # the launch page held this learner while Zoom caught up
                    attempt += 1
                    await asyncio.sleep(int(wait.group(1)))  # as a browser follows the page's refresh
                    redirect = await client.get(f"{launch}?attempt={attempt}")
            except (httpx2.HTTPError, ValueError, KeyError):
                failed += 1
                return
            if redirect.status_code != 302:
                failed += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            personal += "tk=" in redirect.headers["location"]  # the simulator's registrant links carry a token

        began = time.perf_counter()
        await asyncio.gather(*(learner(n) for n in range(LEARNERS)))
        elapsed = time.perf_counter() - began
    return {
        "learners": LEARNERS, "spread_seconds": SPREAD, "elapsed_seconds": round(elapsed, 2),
        "failed": failed, "held_then_retried": held, "personal_links": personal,
        "personal_share": round(personal / LEARNERS, 3),
        "time_to_join_url_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                                "max": round(max(latencies), 1) if latencies else None,
                                "mean": round(statistics.fmean(latencies), 1) if latencies else None},
    }


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-zoom-bench-")))
        sim = stack.enter_context(running_simulator(plan="pro"))  # real clock: Pro's real per-second limits
        sim.state.seed_user(HOST, first_name="Tess", last_name="Teacher")
        env = {**os.environ, "VILTBRIDGE_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
               "VILTBRIDGE_KEY_FILE": str(tmp / "key"), "VILTBRIDGE_SECRET_KEY": ""}
        config = sim.config
        settings = {"account_id": config.account_id, "client_id": config.client_id,
                    "client_secret": config.client_secret, "webhook_secret_token": config.webhook_secret_token,
                    "api_base_url": sim.api_base_url, "oauth_token_url": sim.oauth_token_url, "plan": "pro"}
        credentials = {}
        for mode, batching in (("batched", "true"), ("naive", "false")):
            sets = [f"--set={k}={v}" for k, v in {**settings, "batch_registration": batching}.items()]
            out = stack.enter_context(tempfile.TemporaryFile())
            import subprocess

            subprocess.run([str(BIN / "viltbridge"), "connection", "create", f"zoom-{mode}", "--provider", "zoom",
                            *sets, "--json"], env=env, stdout=out, check=True)
            out.seek(0)
            created = json.loads(out.read())
            credentials[mode] = "Basic " + b64(f"{created['username']}:{created['password']}")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = start(stack, [str(BIN / "viltbridge"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                       env, tmp / "serve.log")
        wait_ready(f"{base_url}/healthz", server, tmp / "serve.log")
        begin = datetime.now(UTC) + timedelta(minutes=5)
        for mode, authorization in credentials.items():
            status, body = request("POST", f"{base_url}/instructor", authorization,
                                   {"Email": HOST, "FirstName": "Tess", "LastName": "Teacher"})
            if status != 200:
                raise BenchError(f"adding the instructor failed: {status} {body[:300]!r}")
            status, body = request("POST", f"{base_url}/session", authorization, {
                "SessionId": f"crowd-{mode}", "CreatorEmail": "admin@example.com", "Title": "Crowd",
                "DateBegin": begin.strftime("%Y-%m-%dT%H:%M:%S"),
                "DateEnd": (begin + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "TimeZone": {"UTCOffset": "+00:00"}, "InstructorEmails": HOST})
            if status != 200:
                raise BenchError(f"creating the session failed: {status} {body[:300]!r}")
        for mode, authorization in credentials.items():
            time.sleep(2)  # a fresh second for Zoom's per-second limits
            results[mode] = asyncio.run(crowd(base_url, authorization, f"crowd-{mode}"))
        results["server_peak_rss_mib"] = peak_rss_mib(server.pid)
    return results


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        results = run()
    except (BenchError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    report = {
        "benchmark": f"{LEARNERS} learners launching within {SPREAD:g}s, Zoom simulator on Pro-plan limits",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for mode in ("batched", "naive"):
        r = results[mode]
        print(f"  {mode:8} p50 {r['time_to_join_url_ms']['p50']:7.1f} ms  p99 {r['time_to_join_url_ms']['p99']:7.1f} ms"
              f"  personal {r['personal_share']:.0%}  held {r['held_then_retried']}  failed {r['failed']}")
    print(f"  written to {RESULTS.relative_to(ROOT)}")
    return 1 if results["batched"]["failed"] or results["naive"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
