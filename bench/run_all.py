"""`make bench`: every benchmark, one after another in one run, then bench/results/SUMMARY.md.

Each benchmark runs in a process of its own (`python -m bench.<name>`) and writes bench/results/<name>.json; the
summary puts the machine, the versions and every figure and ratio of this run side by side, and says which targets
are met. A benchmark that fails is reported in the summary (and the exit status), the others still run.

Usage: python -m bench.run_all [--only launch,jobs] [--skip attendance_collection]
Each benchmark's own environment variables (see its docstring and bench/README.md) size it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.processes import POSTGRES_ADMIN_URL, REDIS_URL, ROOT, results_dir, server_version

BENCHMARKS = ("attendance", "launch", "launch_burst", "jobs", "attendance_collection", "cli_startup")
PACKAGES = ("viltbridge", "fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "aiosqlite", "asyncpg",
            "psycopg", "huey", "redis", "httpx2", "pyrate-limiter")


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return None

    memory = first("/proc/meminfo", "MemTotal")
    wrk = shutil.which("wrk")
    return {
        "cpus": os.cpu_count(), "cpu_model": first("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(memory.split()[0]) / 2**20, 1) if memory else None,
        "os": first("/etc/os-release", "PRETTY_NAME="), "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in PACKAGES},
        "postgresql": server_version(POSTGRES_ADMIN_URL), "redis": server_version(REDIS_URL),
        "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split(" [")[0].strip()
               if wrk else None,
        "load_1min": round(os.getloadavg()[0], 2),
    }


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run(name: str) -> dict[str, Any]:
    print(f"== bench.{name}", flush=True)
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {"exit_status": done.returncode, "seconds": round(time.monotonic() - began, 1)}


def load(name: str) -> dict[str, Any] | None:
    path = results_dir() / f"{name}.json"
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def launch_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    load = report["load"]
    lines = ["## Launch endpoint vs bare Starlette", "",
             f"`GET /session/{{id}}/user/{{email}}/url` under wrk ({load['connections']} connections, "
             f"{load['threads']} threads, {load['seconds']} s after a {load['warmup_seconds']} s warm-up, "
             f"{load['distinct_emails']} learner emails), against a bare Starlette route with the same uvicorn "
             "settings and process count.", "",
             "| target | req/s | p50 ms | p99 ms | max ms | peak RSS MiB (all processes) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, result in report["results"].items():
        latency = result["latency_ms"]
        lines.append(f"| {name} | {fmt(result['requests_per_second'])} | {fmt(latency['p50'], 2)} | "
                     f"{fmt(latency['p99'], 2)} | {fmt(latency['max'], 2)} | {fmt(result['peak_rss_mib'])} | "
                     f"{sum(result['errors'].values())} |")
    lines += ["", "| ratio (requests/s) | value |", "|---|---:|"]
    lines += [f"| {name} | {ratio:.3f} |" for name, ratio in report["ratios"].items()]
    for name, target in report["targets"].items():
        targets.append((f"launch: {name} ≥ {target['target']}", f"{target['ratio']:.3f}", target["met"]))
    return lines


def burst_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    lines = ["## Launch bursts per provider, under its limits", "",
             report["benchmark"] + ". Time to join URL: from the LMS's request to the provider link in the browser "
             "(holding-page waits included). Personal: the share of learners whose provider link no other learner "
             "got.", "",
             "| provider | mode | limits enforced | p50 ms | p99 ms | max ms | personal | held | failed |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for provider, results in report["providers"].items():
        for mode, r in results.items():
            if not isinstance(r, dict):
                continue
            latency = r["time_to_join_url_ms"]
            lines.append(f"| {provider} | {mode} | {results['limits']} | {fmt(latency['p50'])} | "
                         f"{fmt(latency['p99'])} | {fmt(latency['max'])} | {r['personal_share']:.0%} | "
                         f"{r['held_then_retried']} | {r['failed']} |")
            targets.append((f"launch burst: {provider} {mode}: no failed launch", str(r["failed"]), r["failed"] == 0))
    limits = [(provider, mode, r) for provider, results in report["providers"].items()
              for mode, r in results.items() if isinstance(r, dict) and r.get("physical_limit")]
    if limits:
        lines += ["", "Against the physical limit (registrations the provider's limit allows within the spread, "
                      "plus the learners registered ahead of their click):", "",
                  "| provider | mode | known ahead | limit: personal share | personal | p50 ms | provider 429s |",
                  "|---|---|---:|---:|---:|---:|---:|"]
    for provider, mode, r in limits:
        limit = r["physical_limit"]
        lines.append(f"| {provider} | {mode} | {limit['known_ahead']} | {limit['personal_share_limit']:.0%} "
                     f"({limit['registrations_within_spread']} registrations + {limit['known_ahead']}) | "
                     f"{r['personal_share']:.0%} | {fmt(r['time_to_join_url_ms']['p50'])} | "
                     f"{r.get('provider_429s', '')} |")
        targets.append((f"launch burst: {provider} {mode}: personal share against the limit of "
                        f"{limit['personal_share_limit']:.0%} (no numeric target in the issue)",
                        f"{r['personal_share']:.0%}", None))
    for name, ratio in (report.get("ratios") or {}).items():
        lines += ["", f"Ratio {name}: {fmt(ratio, 2)}"]
    return lines


def attendance_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    data, memory = report["data"], report["memory"]
    lines = ["## Attendance merge (pure arithmetic)", "",
             f"{data['segments']:,} segments, {data['learners']:,} learners, one process.", "",
             "| step | segments/s | seconds |", "|---|---:|---:|"]
    for name in ("pipeline", "explanations", "presence", "naive", "reference"):
        lines.append(f"| {name} | {fmt(report[name]['segments_per_second'])} | {fmt(report[name]['seconds'], 3)} |")
    lines += ["", f"Best of {data['runs']} run(s) each (the reference once). Ratios: presence vs naive "
                  f"{report['ratio_presence_to_naive']:.2f}x, pipeline vs naive "
                  f"{report['ratio_pipeline_to_naive']:.2f}x "
                  f"({report['ratio_pipeline_with_explanations_to_naive']:.2f}x with every explanation read), "
                  f"pipeline vs reference {report['ratio_pipeline_to_reference']:.2f}x. "
                  f"Memory: data set {memory['dataset_rss_mib']} MiB RSS, pipeline peak "
                  f"{memory['pipeline_tracemalloc_peak_mib']} MiB traced (RSS grew {memory['pipeline_rss_delta_mib']} "
                  f"MiB), process peak {memory['peak_rss_mib']} MiB."]
    targets.append(("attendance merge: presence identical to the naive baseline",
                    str(report["presence_identical"]), bool(report["presence_identical"])))
    targets.append(("attendance merge: decisions identical to the naive reference",
                    str(report["decisions_identical"]), bool(report["decisions_identical"])))
    for name, target in report["targets"].items():
        targets.append((f"attendance merge: {name} ≥ {target['target']:g}x the naive baseline",
                        f"{target['ratio']:.2f}x", target["met"]))
    return lines


def collection_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    honest = "" if report["meetings"] >= 5000 else (
        f" **Scaled down: {report['meetings']:,} meetings, not the issue's 5,000.**")
    lines = ["## Attendance collection under Zoom's limits", "",
             f"{report['meetings']:,} ended Zoom meetings ({report['participants_per_meeting']} participants each), "
             f"collected by {report['worker_processes']} `viltbridge worker` process(es) x "
             f"{report['threads_per_worker']} threads against the simulator enforcing the {report['plan']} plan "
             f"(per second: {report['per_second_limits']}).{honest}", "",
             "| wall time s | theoretical minimum s | ratio | calls | 429s | meetings/s | setup s (untimed) |",
             "|---:|---:|---:|---|---|---:|---:|",
             f"| {fmt(report['seconds'])} | {fmt(report['theoretical_minimum_seconds'], 2)} | "
             f"{fmt(report['ratio_to_minimum'], 2)} | {report['calls']} | {report['refused_429'] or 0} | "
             f"{fmt(report['meetings_per_second'])} | {fmt(report['setup_seconds'])} |", "",
             f"Sessions by attendance state afterwards: {report['sessions_by_attendance_state']}."]
    final = report["sessions_by_attendance_state"].get("final", 0)
    targets.append(("attendance collection: every meeting final", f"{final:,}/{report['meetings']:,}",
                    final == report["meetings"]))
    ratio, refused = report["ratio_to_minimum"], sum(report["refused_429"].values())
    targets.append(("attendance collection: <= 1.05x the theoretical minimum, with 0 429s",
                    f"{fmt(ratio, 2)}x, {refused} 429s", ratio is not None and ratio <= 1.05 and refused == 0))
    return lines


def jobs_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    lines = ["## Job throughput per queue backend", "", report["benchmark"] + ".", "",
             "| backend | database | queue | jobs/s | total s | ledger write s | queue hand-off s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['database']} | {r['queue']} | {fmt(r['jobs_per_second'])} | "
                     f"{fmt(r['total_seconds'], 2)} | {fmt(r['ledger_write_seconds'], 2)} | "
                     f"{fmt(r['queue_handoff_seconds'], 2)} |")
    if report["ratios"]:
        lines += ["", "Ratios (jobs/s): " + ", ".join(f"{name} {ratio:.2f}" for name, ratio in
                                                       report["ratios"].items()) + "."]
    return lines


def cli_section(report: dict[str, Any], targets: list[tuple[str, str, bool | None]]) -> list[str]:
    lines = ["## CLI start-up", "", report["benchmark"] + ".", "",
             "| command | median s | min s | max s | ratio to import typer |", "|---|---:|---:|---:|---:|"]
    for name, r in report["results"].items():
        ratio = report["ratios"].get(f"{name} / import typer")
        lines.append(f"| `{name}` | {fmt(r['median_seconds'], 3)} | {fmt(r['min_seconds'], 3)} | "
                     f"{fmt(r['max_seconds'], 3)} | {fmt(ratio, 2) if ratio is not None else 'baseline'} |")
    for name, target in report["targets"].items():
        targets.append((f"CLI start-up: `{name}` under {target['target_ratio']:g} x `import typer`",
                        f"{target['ratio']:.2f} x", target["met"]))
    return lines


SECTIONS = {"launch": launch_section, "launch_burst": burst_section, "attendance": attendance_section,
            "attendance_collection": collection_section, "jobs": jobs_section, "cli_startup": cli_section}


def summary(ran: dict[str, dict[str, Any]], about: dict[str, Any]) -> str:
    packages = ", ".join(f"{name} {value}" for name, value in about["packages"].items() if value)
    lines = ["# Benchmark summary", "",
             f"Produced by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Absolute figures belong to this "
             "machine at this moment; compare the ratios (see bench/README.md).", "",
             "## Machine", "",
             f"- CPU: {about['cpus']} x {about['cpu_model']}; memory {about['memory_gib']} GiB",
             f"- OS: {about['os']} (kernel {about['kernel']}); Python {about['python']}",
             f"- PostgreSQL {about['postgresql'] or 'unreachable'}; Redis {about['redis'] or 'unreachable'}; "
             f"{about['wrk'] or 'wrk missing'}",
             f"- Packages: {packages}",
             f"- 1-minute load when the run started: {about['load_1min']}"
             + (" (the machine was busy: the absolute figures are noisy)" if about["load_1min"] > 1 else ""), "",
             "## Runs", "", "| benchmark | exit status | seconds |", "|---|---:|---:|"]
    lines += [f"| {name} | {result['exit_status']} | {result['seconds']} |" for name, result in ran.items()]
    targets: list[tuple[str, str, bool | None]] = []
    for name in ran:
        report = load(name)
        lines.append("")
        if report is None or ran[name]["exit_status"] != 0:
            lines.append(f"## {name}: FAILED (exit status {ran[name]['exit_status']}); see its output"
                         + ("; the figures below are from the failed run" if report is not None else ""))
            if report is None:
                continue
            lines.append("")
        lines += SECTIONS[name](report, targets)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    verdicts = {True: "yes", False: "**NO**", None: "(reported)"}
    lines += [f"| {name} | {measured} | {verdicts[met]} |" for name, measured, met in targets]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated, from {', '.join(BENCHMARKS)}")
    parser.add_argument("--skip", help="comma-separated benchmarks to leave out")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(BENCHMARKS)
    skipped = {name.strip() for name in args.skip.split(",")} if args.skip else set()
    unknown = [name for name in [*chosen, *skipped] if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    about = machine()
    ran = {name: run(name) for name in chosen if name not in skipped}
    path = results_dir() / "SUMMARY.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary(ran, about))
    print(f"summary written to {path}")
    failed = [name for name, result in ran.items() if result["exit_status"] != 0]
    if failed:
        print(f"bench failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
