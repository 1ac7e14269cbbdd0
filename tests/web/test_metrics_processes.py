"""Metrics across processes (prometheus-client's multiprocess mode): `serve --workers 2` and a `viltbridge worker`
share `PROMETHEUS_MULTIPROC_DIR`; whichever server process answers the scrape reports them all. Files left by
processes that are gone are removed at start."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import session_body
from tests.processes import VILTBRIDGE, free_port, process_env, serving, stop, wait_for

pytestmark = pytest.mark.pure  # its own SQLite database and processes: runs once

TOKEN = "multiprocess-scrape-token-0123"
SECRET = "an-lms-secret-of-some-length-0123456789"


def counted(url: str, name: str, **labels: str) -> float:
    answer = httpx2.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return sum(sample.value for family in text_string_to_metric_families(answer.text) for sample in family.samples
               if sample.name == name and set(labels.items()) <= set(sample.labels.items()))


def gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_every_process_is_counted_and_files_of_gone_ones_are_removed(tmp_path: Path) -> None:
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    left_over = multiproc / f"counter_{gone_pid()}.db"
    left_over.write_bytes(b"not a sample file: it would break every scrape if it were read")
    env = process_env(f"sqlite:///{tmp_path / 'vilt.db'}", Fernet.generate_key().decode(),
                      PROMETHEUS_MULTIPROC_DIR=str(multiproc), VILTBRIDGE_METRICS_TOKEN=TOKEN,
                      VILTBRIDGE_KEY_FILE=str(tmp_path / "vilt.key"))
    with serving(env, tmp_path / "serve.log", "--workers", "2", "--no-worker") as (_, url):
        assert not left_over.exists()
        for _ in range(20):
            assert httpx2.get(f"{url}/healthz", timeout=10).status_code == 200
        # Each scrape may reach either process; each sees both processes' requests.
        for _ in range(4):
            assert counted(url, "viltbridge_http_requests_total", route="/healthz") == 21  # + serve's own wait
        assert len({path.name.rpartition("_")[2] for path in multiproc.glob("counter_*.db")}) >= 2

        subprocess.run([str(VILTBRIDGE), "connection", "create", "acme", "--password", SECRET], env=env,
                       capture_output=True, check=True, cwd=tmp_path)
        ended = datetime.now(UTC) - timedelta(hours=3)  # its attendance job is due at once
        body = session_body("gone", start=ended)
        auth = ("acme", SECRET)
        assert httpx2.post(f"{url}/session", json=body, auth=auth, timeout=20).status_code == 200
        with (tmp_path / "worker.log").open("ab") as log:
            worker = subprocess.Popen([str(VILTBRIDGE), "worker"], env=env, cwd=tmp_path, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: counted(url, "viltbridge_jobs_run_total", kind="attendance.collect") >= 1, seconds=60,
                     what="the worker's job in the server's /metrics",
                     explain=lambda: (tmp_path / "worker.log").read_text(errors="replace")[-3000:])
        finally:
            stop(worker)


def test_a_worker_on_its_own_serves_its_metrics_on_localhost(tmp_path: Path) -> None:
    env = process_env(f"sqlite:///{tmp_path / 'vilt.db'}", Fernet.generate_key().decode(),
                      VILTBRIDGE_KEY_FILE=str(tmp_path / "vilt.key"))
    subprocess.run([str(VILTBRIDGE), "migrate"], env=env, capture_output=True, check=True, cwd=tmp_path)
    port = free_port()
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen([str(VILTBRIDGE), "worker", "--metrics-port", str(port)], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers() -> bool:
            try:
                return httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_for(answers, seconds=60, what="the worker's metrics port",
                 explain=lambda: (tmp_path / "worker.log").read_text(errors="replace")[-3000:])
        families = {family.name for family in text_string_to_metric_families(
            httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)}
        assert {"viltbridge_jobs_run", "viltbridge_job_seconds", "viltbridge_provider_calls"} <= families
    finally:
        stop(worker)
