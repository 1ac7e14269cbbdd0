"""One log format for every line a running `viltbridge serve` writes (its own, uvicorn's, stamina's retry warnings),
plain text or, with `VILTBRIDGE_LOG_FORMAT=json`, one JSON object per line; line breaks a client sends stay inside
their record and secrets stay out, in both."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.fernet import Fernet

from tests.conftest import session_body
from tests.processes import VILTBRIDGE, process_env, serving
from tests.providers.conftest import zoom_settings
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator

HOST = "tess@example.com"
FORGED = "\r\n2026-03-02 14:00:00 ERROR viltbridge [admin] forged\u2028"
PLAIN_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ \[[^\]]+\] .+")


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomSimulator]:
    with running_simulator(start=datetime.now(UTC)) as simulator:
        yield simulator


def served_log(zoom: ZoomSimulator, tmp_path: Path, log_format: str) -> tuple[str, list[str]]:
    """`viltbridge serve` in `log_format` answering a few LMS calls, Zoom failing once (one stamina retry); its
    output, and the secrets that must not be in it."""
    zoom.reset(start=datetime.now(UTC))
    zoom.state.seed_user(HOST, first_name="Tess", last_name="Teacher")
    settings = zoom_settings(zoom)
    env = process_env(f"sqlite:///{tmp_path / 'vb.db'}", Fernet.generate_key().decode(),
                      VILTBRIDGE_LOG_FORMAT=log_format)
    created = subprocess.run([str(VILTBRIDGE), "connection", "create", "acme", "--provider", "zoom", "--json",
                              *(f"--set={key}={value}" for key, value in settings.items())],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    auth = ("acme", json.loads(created.stdout)["password"])
    log = tmp_path / "serve.log"
    with serving(env, log) as (_, url):
        zoom.state.inject_fault(503, count=1, method="POST")  # the next call to Zoom fails once, then works
        starts = datetime.now(UTC) + timedelta(days=1)
        saved = httpx2.post(f"{url}/session", json=session_body("s-1", start=starts, InstructorEmails=HOST),
                            headers={"correlationId": "retried-1"}, auth=auth, timeout=30)
        assert saved.status_code == 200, saved.text
        bad_date = session_body("s-2", DateBegin="soon" + FORGED)
        assert httpx2.post(f"{url}/session", json=bad_date, auth=auth, timeout=30).status_code == 400
        assert httpx2.delete(f"{url}/session/s-2", params={"LoId": "lo" + FORGED}, auth=auth,
                             timeout=30).status_code == 200
        assert httpx2.get(f"{url}/healthz", timeout=30).status_code == 200
    return log.read_text(), [auth[1], settings["client_secret"]]


def test_json_logs_are_one_object_per_line_stamina_retries_included(zoom: ZoomSimulator, tmp_path: Path) -> None:
    output, secrets = served_log(zoom, tmp_path, "json")
    records: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines()]  # each line one object
    assert all({"timestamp", "level", "logger", "message"} <= set(record) for record in records), records
    retries = [record for record in records if record["logger"] == "stamina"]
    assert len(retries) == 1 and retries[0]["level"] == "warning", records
    assert retries[0]["correlation_id"] == "retried-1" and "503" in retries[0]["message"]
    assert sum("forged" in record["message"] for record in records) == 2, records  # each inside its record
    assert not [secret for secret in secrets if secret in output]


def test_plain_logs_write_stamina_retries_like_every_other_line(zoom: ZoomSimulator, tmp_path: Path) -> None:
    output, secrets = served_log(zoom, tmp_path, "plain")
    lines = output.splitlines()
    assert lines and all(PLAIN_LINE.fullmatch(line) for line in lines), lines
    retries = [line for line in lines if " WARNING stamina [retried-1] retry 1 scheduled" in line]
    assert len(retries) == 1 and "503" in retries[0], lines
    assert sum("forged" in line for line in lines) == 2, lines
    assert not [secret for secret in secrets if secret in output]
