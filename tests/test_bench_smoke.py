"""`make bench` at a tiny size, so the benchmarks keep working as the code under them changes: every benchmark runs
once through `python -m bench.run_all` into a temporary directory, and its result file and the summary must have
the structure bench/README.md describes. No timing is asserted (timings belong to `make bench`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, service_unavailable
from tests.jobs.test_queue_backends import REDIS_URL, reachable_queue

pytestmark = pytest.mark.scale_out
ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("zoom", "webex", "teams", "goto", "bbb", "jitsi", "link")
TINY = {
    "BENCH_SECONDS": "1", "BENCH_WARMUP_SECONDS": "0", "BENCH_CONNECTIONS": "4", "BENCH_THREADS": "1",
    "BENCH_EMAILS": "10", "BENCH_LAUNCH_DATABASES": "postgresql", "BENCH_LAUNCH_PROCESSES": "2",
    "BENCH_LEARNERS": "6", "BENCH_SPREAD_SECONDS": "0.1", "BENCH_SETTLE_SECONDS": "0",
    "BENCH_SEGMENTS": "2000",
    "BENCH_JOBS": "10", "BENCH_JOB_WORKERS": "1", "BENCH_JOB_THREADS": "2",
    "BENCH_MEETINGS": "12", "BENCH_PARTICIPANTS": "3",
    "BENCH_CLI_RUNS": "2",
}


@pytest.fixture(scope="module")
def results(postgres_template: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny `make bench` for the module's tests; its exit status and output are checked by the first test."""
    out = tmp_path_factory.mktemp("bench")
    reachable_queue("redis", out)
    if shutil.which("wrk") is None:  # the launch benchmark's load generator (.ci/run installs it)
        service_unavailable("wrk is not installed (Debian: apt-get install -y wrk)")
    env = {**{key: value for key, value in os.environ.items() if not key.startswith(("VILTBRIDGE_", "BENCH_"))},
           **TINY, "BENCH_RESULTS_DIR": str(out), "BENCH_POSTGRES_URL": POSTGRES_URL, "BENCH_REDIS_URL": REDIS_URL}
    # About 100 s on a quiet machine, over 200 s at a load of 16 on 2 cores: the bound is for a hang, not for speed.
    done = subprocess.run([sys.executable, "-m", "bench.run_all"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    (out / "run.log").write_text(f"exit status {done.returncode}\n{done.stdout}\n{done.stderr}")
    return out


def loaded(results: Path, name: str) -> dict[str, Any]:
    path = results / f"{name}.json"
    assert path.exists(), f"{name}.json was not written:\n{(results / 'run.log').read_text()[-4000:]}"
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def test_every_benchmark_runs_and_the_run_succeeds(results: Path) -> None:
    log = (results / "run.log").read_text()
    assert log.startswith("exit status 0"), log[-4000:]
    assert sorted(p.name for p in results.glob("*.json")) == [
        "attendance.json", "attendance_collection.json", "cli_startup.json", "jobs.json", "launch.json",
        "launch_burst.json"]


def test_launch_compares_the_database_and_process_count_with_bare_starlette(results: Path) -> None:
    report = loaded(results, "launch")
    # SQLite is the same code with another URL; PostgreSQL and 2 processes are the paths worth keeping alive here.
    assert set(report["results"]) == {"launch_postgresql_2p", "bare_2p"}
    for result in report["results"].values():
        assert result["requests"] > 0 and result["requests_per_second"] > 0
        assert set(result["latency_ms"]) == {"p50", "p99", "max"}
        assert sum(result["errors"].values()) == 0
    assert set(report["ratios"]) == {"launch_postgresql_2p / bare_2p"}
    assert {name: target["target"] for name, target in report["targets"].items()} == {
        "launch_postgresql_2p / bare_2p": 0.5}


def test_launch_bursts_cover_every_provider_and_every_learner(results: Path) -> None:
    report = loaded(results, "launch_burst")
    assert tuple(report["providers"]) == PROVIDERS
    assert set(report["providers"]["zoom"]) == {"limits", "batched", "naive"}
    for provider, modes in report["providers"].items():
        for mode, crowd in modes.items():
            if mode == "limits":
                continue
            assert crowd["learners"] == 6 and crowd["failed"] == 0, (provider, mode, crowd["failures"])
            assert crowd["time_to_join_url_ms"]["p99"] is not None
    # Registrant links (Zoom) are personal; Teams hands everyone the meeting's one join URL.
    assert report["providers"]["zoom"]["batched"]["personal_share"] == 1.0
    assert report["providers"]["teams"]["default"]["personal_share"] == 0.0
    # GoTo: part 1's crowd (nobody known ahead), then part 2's, 4 of its 6 learners registered ahead (0.8 of them,
    # spread evenly), against the limit; GoTo never answered 429.
    goto = report["providers"]["goto"]
    assert set(goto) == {"limits", "default", "registered ahead"}
    assert goto["registered ahead"]["physical_limit"]["known_ahead"] == 4
    assert goto["default"]["provider_429s"] == goto["registered ahead"]["provider_429s"] == 0
    assert "zoom naive p99 / batched p99" in report["ratios"]


def test_attendance_merge_agrees_with_the_naive_baseline(results: Path) -> None:
    report = loaded(results, "attendance")
    assert report["data"]["segments"] == 2000 and report["presence_identical"] is True
    assert {"pipeline", "presence", "naive", "memory", "ratio_presence_to_naive"} <= set(report)
    assert report["decisions_identical"] is True and set(report["targets"]) == {"pipeline", "presence"}


def test_attendance_collection_counts_calls_against_the_plans_limits(results: Path) -> None:
    report = loaded(results, "attendance_collection")
    assert report["sessions_by_attendance_state"] == {"final": 12}
    # One Medium call (ended instances) and one Heavy call (participants report) per meeting.
    assert report["calls"] == {"Medium": 12, "Heavy": 12}
    assert report["theoretical_minimum_seconds"] == 12 / report["per_second_limits"]["Heavy"]
    assert report["ratio_to_minimum"] is not None


def test_jobs_run_on_every_queue_backend(results: Path) -> None:
    report = loaded(results, "jobs")
    assert {name: (r["database"], r["queue"]) for name, r in report["results"].items()} == {
        "sqlite": ("sqlite", "sqlite"), "postgresql": ("postgresql", "postgresql"), "redis": ("postgresql", "redis")}
    assert all(r["jobs"] == 10 and r["failed_attempts"] == 0 for r in report["results"].values())
    assert set(report["ratios"]) == {"postgresql / sqlite", "redis / sqlite"}


def test_cli_startup_times_each_command_against_importing_typer(results: Path) -> None:
    report = loaded(results, "cli_startup")
    assert report["runs"] == 2
    assert set(report["results"]) == {"python -c 'import typer'", "viltbridge --help", "viltbridge keygen",
                                      "viltbridge connection list", "viltbridge connection create",
                                      "python -c 'import typer, sqlalchemy.orm'"}
    assert all(r["median_seconds"] > 0 for r in report["results"].values())
    assert set(report["ratios"]) == {f"{name} / import typer" for name in report["results"]
                                     if name != "python -c 'import typer'"}
    assert {name: target["target_ratio"] for name, target in report["targets"].items()} == {
        "viltbridge --help": 2.0, "viltbridge keygen": 2.0}
    assert all(target["ratio"] > 0 for target in report["targets"].values())


def test_the_summary_names_the_machine_every_benchmark_and_the_targets(results: Path) -> None:
    summary = (results / "SUMMARY.md").read_text()
    for heading in ("## Machine", "## Launch endpoint vs bare Starlette", "## Launch bursts per provider",
                    "## Attendance merge", "## Attendance collection under Zoom's limits",
                    "## Job throughput per queue backend", "## CLI start-up", "## Targets"):
        assert heading in summary
    assert re.search(r"PostgreSQL \d+\.\d+.*; Redis \d+\.\d+\.\d+", summary), summary[:2000]
    assert "Scaled down: 12 meetings" in summary
    assert "FAILED" not in summary
    targets = summary.split("## Targets")[1]
    assert "| launch burst: zoom batched: no failed launch | 0 | yes |" in targets
    assert "| attendance collection: every meeting final | 12/12 | yes |" in targets
