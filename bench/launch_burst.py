"""`make bench` (launch bursts): BENCH_LEARNERS learners launching within BENCH_SPREAD_SECONDS, per provider, each
against its simulator on the provider's real limits.

For every provider (zoom, webex, teams, goto, bbb, jitsi, link): starts its simulator on the real clock (with the
limits docs/providers.md gives: Zoom's Pro plan per-second and daily limits, GoTo's 10 requests/s per API; Webex
and Graph publish no per-second numbers and BigBlueButton, Jitsi and a plain link have no API limits, so those run
without) and creates a connection to it; starts one `viltbridge serve`; then per provider in turn adds an
instructor and a session, waits BENCH_SETTLE_SECONDS (2) for fresh per-second limits, and fires the learners'
launches on a schedule: each asks for its joinUrl as Cornerstone would and follows it as a browser would, waiting
on the holding page when the launch page shows one. Measures the time from the LMS's request to the provider link
(p50/p99), the share of personal links (a provider link no other learner got), the learners held and the failures.
Zoom runs twice, batched and naive (batching off: one registration call per click), so its figures stay comparable
with the earlier bench/results/zoom_launch.json. GoTo runs a two-part session: part 1's crowd is the `default` row
(nobody known ahead), then, once viltbridge has registered part 1's learners for part 2 in the background, part 2's
crowd is the `registered ahead` row: BENCH_KNOWN_SHARE (0.8) of its learners launched part 1, the rest are new.
Each GoTo row carries the physical limit: registrations GoTo's limit allows within the spread, as a share of the
crowd, without and with the learners registered ahead. Writes bench/results/launch_burst.json.

Environment: BENCH_LEARNERS (500), BENCH_SPREAD_SECONDS (5), BENCH_SETTLE_SECONDS (2), BENCH_PROVIDERS (all,
comma-separated), BENCH_KNOWN_SHARE (0.8), BENCH_AHEAD_TIMEOUT_SECONDS (600: how long part 1's learners may take to
be registered for part 2).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from bench.processes import (
    BenchError,
    b64,
    create_connections,
    machine,
    peak_rss_mib,
    percentile,
    request,
    serve,
    viltbridge_env,
    write_results,
)

LEARNERS = int(os.environ.get("BENCH_LEARNERS", "500"))
SPREAD = float(os.environ.get("BENCH_SPREAD_SECONDS", "5"))
SETTLE_SECONDS = float(os.environ.get("BENCH_SETTLE_SECONDS", "2"))
KNOWN_SHARE = float(os.environ.get("BENCH_KNOWN_SHARE", "0.8"))
AHEAD_TIMEOUT = float(os.environ.get("BENCH_AHEAD_TIMEOUT_SECONDS", "600"))
# The registration job runs at the workers' minute upkeep: this long without a new registrant and it is done.
STALLED_SECONDS = 90.0
HOST_EMAIL = "tess@example.com"
HOLDING_REFRESH = re.compile(r'http-equiv="refresh" content="(\d+);')


@dataclass
class Target:
    """One provider's run: its simulator (None: no API), how to seed a host there, the connection settings."""

    provider: str
    limits: str  # what the simulator enforces, in words, for the report
    simulator: Callable[[], AbstractContextManager[Any]] = lambda: nullcontext(None)
    seed: Callable[[Any], None] = lambda sim: None
    settings: Callable[[Any], dict[str, Any]] = lambda sim: {}
    modes: dict[str, dict[str, str]] = field(default_factory=lambda: {"default": {}})
    # Calls a second the provider allows for registrations (GoTo: one registration per personal link); set, the
    # target runs the two-part scenario (`two_parts`) and its rows report the physical limit.
    registrations_per_second: int | None = None


def zoom_settings(sim: Any) -> dict[str, Any]:
    config = sim.config
    return {"account_id": config.account_id, "client_id": config.client_id, "client_secret": config.client_secret,
            "webhook_secret_token": config.webhook_secret_token, "api_base_url": sim.api_base_url,
            "oauth_token_url": sim.oauth_token_url, "plan": "pro"}


def targets() -> dict[str, Target]:
    from viltbridge.providers.bbb.simulator import running_simulator as bbb
    from viltbridge.providers.goto.simulator import running_simulator as goto
    from viltbridge.providers.jitsi.simulator import running_simulator as jitsi
    from viltbridge.providers.teams.simulator import running_simulator as teams
    from viltbridge.providers.webex.simulator import running_simulator as webex
    from viltbridge.providers.zoom.simulator import running_simulator as zoom

    return {target.provider: target for target in (
        Target("zoom", "Pro plan: Light 30/s, Medium 20/s, Heavy 10/s (30,000/day), 100 meeting writes/host/day",
               lambda: zoom(plan="pro"), lambda sim: sim.state.seed_user(HOST_EMAIL, first_name="Tess",
                                                                         last_name="Teacher"),
               zoom_settings, {"batched": {"batch_registration": "true"}, "naive": {"batch_registration": "false"}}),
        Target("webex", "none (Webex publishes no per-second numbers)", webex,
               lambda sim: sim.state.seed_person(HOST_EMAIL, first_name="Tess", last_name="Teacher"),
               lambda sim: sim.settings()),
        Target("teams", "none (Graph publishes no per-second numbers for these calls)", teams,
               lambda sim: sim.state.seed_user(HOST_EMAIL, "Tess Teacher"), lambda sim: sim.settings()),
        Target("goto", "10 requests/s per API", goto, settings=lambda sim: sim.settings(),
               registrations_per_second=10),
        Target("bbb", "none (BigBlueButton has no API limits)", bbb, settings=lambda sim: sim.settings()),
        Target("jitsi", "none (JaaS tokens are signed locally)", jitsi, settings=lambda sim: sim.settings()),
        Target("link", "none (no provider API)"),
    )}


def selected() -> list[Target]:
    known = targets()
    names = [name.strip() for name in os.environ.get("BENCH_PROVIDERS", ",".join(known)).split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BenchError(f"BENCH_PROVIDERS names {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names]


def link_identity(url: str) -> str:
    """A provider link without its fragment: a display-name tag after `#` does not make a link personal."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{parts.query}"


def learner_email(n: int) -> str:
    return f"learner{n}@example.com"


async def crowd(base_url: str, authorization: str, session_id: str,
                email: Callable[[int], str] = learner_email) -> dict[str, Any]:
    """Every learner: GET the joinUrl (Cornerstone), then GET it (the browser); time both together."""
    latencies: list[float] = []
    links: dict[int, str] = {}
    failures: Counter[str] = Counter()
    held = 0
    limits = httpx2.Limits(max_connections=LEARNERS, max_keepalive_connections=LEARNERS)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
        async def learner(n: int) -> None:
            nonlocal held
            await asyncio.sleep(n * SPREAD / LEARNERS)
            began = time.perf_counter()
            try:
                asked = await client.get(f"{base_url}/session/{session_id}/user/{b64(email(n))}/url",
                                         headers={"Authorization": authorization})
                launch = asked.json()["data"]["joinUrl"]
                redirect = await client.get(launch)
                attempt = 0
                while redirect.status_code == 200 and (wait := HOLDING_REFRESH.search(redirect.text)):
                    held += attempt == 0  # the launch page held this learner while the provider caught up
                    attempt += 1
                    await asyncio.sleep(int(wait.group(1)))  # as a browser follows the page's refresh
                    redirect = await client.get(f"{launch}?attempt={attempt}")
            except (httpx2.HTTPError, ValueError, KeyError) as exc:
                failures[exc.__class__.__name__] += 1
                return
            if redirect.status_code != 302:
                failures[f"HTTP {redirect.status_code}"] += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            links[n] = link_identity(redirect.headers["location"])

        began = time.perf_counter()
        await asyncio.gather(*(learner(n) for n in range(LEARNERS)))
        elapsed = time.perf_counter() - began
    shared = Counter(links.values())
    personal = sum(1 for link in links.values() if shared[link] == 1)
    return {
        "learners": LEARNERS, "spread_seconds": SPREAD, "elapsed_seconds": round(elapsed, 2),
        "failed": sum(failures.values()), "failures": dict(failures), "held_then_retried": held,
        "personal_links": personal, "personal_share": round(personal / LEARNERS, 3),
        "time_to_join_url_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                                "max": round(max(latencies), 1) if latencies else None,
                                "mean": round(statistics.fmean(latencies), 1) if latencies else None},
    }


def prepare(stack: ExitStack, chosen: list[Target],
            env: dict[str, str]) -> tuple[dict[tuple[str, str], str], dict[str, Any]]:
    """Each target's simulator (stopped with the stack) and connections; the LMS's Authorization header per
    (provider, mode), and the simulators by provider."""
    wanted = []
    sims = {}
    for target in chosen:
        sim = sims[target.provider] = stack.enter_context(target.simulator())
        target.seed(sim)
        wanted += [(f"{target.provider}-{mode}", target.provider, {**target.settings(sim), **extra})
                   for mode, extra in target.modes.items()]
    headers = create_connections(env, wanted)
    keys = [(target.provider, mode) for target in chosen for mode in target.modes]
    return dict(zip(keys, headers, strict=True)), sims


def schedule_session(base_url: str, provider: str, authorization: str, session_id: str, *,
                     title: str = "Crowd", starts_in: timedelta = timedelta(minutes=5), **extra: str) -> None:
    begin = datetime.now(UTC) + starts_in
    status, body = request("POST", f"{base_url}/instructor", authorization,
                           {"Email": HOST_EMAIL, "FirstName": "Tess", "LastName": "Teacher"})
    if status != 200:
        raise BenchError(f"{provider}: adding the instructor failed: {status} {body[:300]!r}")
    status, body = request("POST", f"{base_url}/session", authorization, {
        "SessionId": session_id, "CreatorEmail": "admin@example.com", "Title": title,
        "DateBegin": begin.strftime("%Y-%m-%dT%H:%M:%S"),
        "DateEnd": (begin + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "TimeZone": {"UTCOffset": "+00:00"}, "InstructorEmails": HOST_EMAIL, **extra})
    if status != 200:
        raise BenchError(f"{provider}: creating the session failed: {status} {body[:300]!r}")


def known_in_part_2(n: int) -> bool:
    """Whether part 2's learner n launched part 1: KNOWN_SHARE of them, spread evenly through the crowd."""
    return int((n + 1) * KNOWN_SHARE) > int(n * KNOWN_SHARE)


def part_2_email(n: int) -> str:
    return learner_email(n) if known_in_part_2(n) else f"newcomer{n}@example.com"


def physical_limit(per_second: int, known: int) -> dict[str, Any]:
    """What the provider's limit allows within the spread: `per_second` registrations a second for the learners
    not registered ahead, on top of the `known` ones who were. The holding page lets registrations go on for a few
    seconds after the spread, so a measured share may pass this."""
    within_spread = round(per_second * SPREAD)
    return {"registrations_within_spread": within_spread, "known_ahead": known,
            "personal_share_limit": round(min(LEARNERS, known + within_spread) / LEARNERS, 3)}


def registrants(sim: Any, title: str) -> set[str]:
    """The emails registered for the simulator's training named `title`."""
    with sim.state.lock:
        return {r.email.lower() for t in sim.state.trainings.values() if t.name == title and not t.deleted
                for r in t.registrants.values()}


def wait_for_registrants(sim: Any, title: str, wanted: int) -> float:
    """Seconds until the simulator's training named `title` holds `wanted` registrants (viltbridge's background
    registrations), or until their number has not grown for STALLED_SECONDS (a learner whose part-1 click the
    ledger missed is not known); BenchError when none came within AHEAD_TIMEOUT."""
    began = last_growth = time.monotonic()
    count = 0
    while time.monotonic() - began < AHEAD_TIMEOUT:
        now_count = len(registrants(sim, title))
        if now_count >= wanted:
            return round(time.monotonic() - began, 1)
        if now_count > count:
            count, last_growth = now_count, time.monotonic()
        elif count and time.monotonic() - last_growth > STALLED_SECONDS:
            print(f"  {title}: {count} of {wanted} learners registered ahead, no more for {STALLED_SECONDS:g} s",
                  file=sys.stderr)
            return round(last_growth - began, 1)
        time.sleep(0.5)
    raise BenchError(f"part 1's learners were not registered for part 2 within {AHEAD_TIMEOUT:g} s "
                     f"({count} of {wanted}); see serve.log")


def two_parts(base_url: str, target: Target, sim: Any, authorization: str, session_id: str) -> dict[str, Any]:
    """A two-part session (one LoId): part 1's crowd (nobody known: the `default` row), then, once part 1's
    learners are registered for part 2 in the background, part 2's crowd (`registered ahead`)."""
    assert target.registrations_per_second is not None
    per_second = target.registrations_per_second
    part_2_title = "Crowd, part 2"
    schedule_session(base_url, target.provider, authorization, f"{session_id}-1", LoId=session_id)
    # Part 2 would be another day; here it starts a minute after part 1 so that both launch windows are open.
    schedule_session(base_url, target.provider, authorization, f"{session_id}-2", title=part_2_title,
                     starts_in=timedelta(minutes=6), LoId=session_id)
    time.sleep(SETTLE_SECONDS)
    first = asyncio.run(crowd(base_url, authorization, f"{session_id}-1"))
    first["physical_limit"] = physical_limit(per_second, 0)
    first["provider_429s"] = sim.state.rate_limited
    registered_in = wait_for_registrants(sim, part_2_title, LEARNERS - first["failed"])
    time.sleep(SETTLE_SECONDS)
    rate_limited_before = sim.state.rate_limited
    ahead = registrants(sim, part_2_title)
    second = asyncio.run(crowd(base_url, authorization, f"{session_id}-2", part_2_email))
    known = sum(1 for n in range(LEARNERS) if known_in_part_2(n) and part_2_email(n) in ahead)
    second["physical_limit"] = physical_limit(per_second, known)
    second["registered_ahead_in_seconds"] = registered_in
    second["provider_429s_while_registering_ahead"] = rate_limited_before - first["provider_429s"]
    second["provider_429s"] = sim.state.rate_limited - rate_limited_before
    return {"default": first, "registered ahead": second}


def run(chosen: list[Target]) -> tuple[dict[str, Any], float | None]:
    """Every target's crowd, one after another, against one `viltbridge serve` holding every connection."""
    providers: dict[str, Any] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-burst-")))
        env = viltbridge_env(tmp)
        credentials, sims = prepare(stack, chosen, env)
        base_url, server = serve(stack, env, tmp / "serve.log")
        for target in chosen:
            results: dict[str, Any] = {"limits": target.limits}
            for mode in target.modes:
                authorization = credentials[target.provider, mode]
                session_id = f"crowd-{target.provider}-{mode}"
                if target.registrations_per_second is not None:
                    results.update(two_parts(base_url, target, sims[target.provider], authorization, session_id))
                    continue
                schedule_session(base_url, target.provider, authorization, session_id)
                time.sleep(SETTLE_SECONDS)  # a fresh second for per-second limits
                results[mode] = asyncio.run(crowd(base_url, authorization, session_id))
            providers[target.provider] = results
        return providers, peak_rss_mib(server.pid)


def summary(report: dict[str, Any]) -> str:
    lines = [f"launch bursts ({LEARNERS} learners within {SPREAD:g}s per provider, "
             f"{report['machine']['nproc']} cores)"]
    for provider, results in report["providers"].items():
        for mode, r in results.items():
            if not isinstance(r, dict):
                continue
            p50, p99 = r["time_to_join_url_ms"]["p50"] or 0, r["time_to_join_url_ms"]["p99"] or 0
            limit = r.get("physical_limit")
            against = (f"  (limit within {SPREAD:g}s {limit['personal_share_limit']:.0%}: "
                       f"{limit['registrations_within_spread']} registrations + {limit['known_ahead']} registered "
                       f"ahead; GoTo 429s {r['provider_429s']})" if limit else "")
            lines.append(f"  {provider + ' ' + mode:25} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  personal "
                         f"{r['personal_share']:5.0%}  held {r['held_then_retried']:4}  failed {r['failed']}"
                         f"{against}")
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        providers, server_peak_rss = run(selected())
    except (BenchError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "benchmark": f"{LEARNERS} learners launching within {SPREAD:g}s per provider, each against its simulator "
                     "on the provider's published limits",
        "date": date,
        "machine": machine(),
        "providers": providers,
        "server_peak_rss_mib": server_peak_rss,
        "duration_seconds": round(time.monotonic() - began, 1),
    }
    zoom = providers.get("zoom")
    if zoom:
        naive, batched = zoom["naive"]["time_to_join_url_ms"]["p99"], zoom["batched"]["time_to_join_url_ms"]["p99"]
        report["ratios"] = {"zoom naive p99 / batched p99": round(naive / batched, 2) if naive and batched else None}
    path = write_results("launch_burst", report)
    print(summary(report))
    print(f"  written to {path}")
    failed = [f"{provider} {mode}" for provider, results in providers.items()
              for mode, r in results.items() if isinstance(r, dict) and r["failed"]]
    if failed:
        print(f"bench failed: launches failed for {', '.join(failed)}; see the failures in the results",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
