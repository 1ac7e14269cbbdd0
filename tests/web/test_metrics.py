"""`/metrics`: a real workflow (a Zoom session saved by the LMS, its launch, the learner's click, webhooks, the
attendance job) moves the counters; Prometheus's own parser reads the answer; only the metrics token gets it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import NOW, Db, service_unavailable, session_body
from tests.providers.conftest import zoom_settings
from tests.providers.fixtures import fixture_bytes
from viltbridge.config import Settings
from viltbridge.core.clock import FixedClock
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator
from viltbridge.web.app import create_app

TOKEN = "scrape-me-0123456789abcdef"
LAUNCH_ROUTE = "/session/{SessionId}/user/{base64EncodedEmail:path}/url"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def zoom() -> Iterator[ZoomSimulator]:
    with running_simulator(start=NOW) as simulator:
        yield simulator


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, secret_key=Fernet.generate_key().decode(), key_file=tmp_path / "key",
                    provider_allow_loopback=True, metrics_token=TOKEN, _env_file=None)  # type: ignore[call-arg]


def scrape(client: TestClient) -> tuple[Samples, set[str]]:
    """Every sample by name and labels, and every family's name, as Prometheus's parser reads them."""
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(answer.text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, names


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(found for (sample, have), found in samples.items() if sample == name and wanted <= have)


def test_a_workflow_moves_the_counters(client: TestClient, db: Db, zoom: ZoomSimulator, clock: FixedClock) -> None:
    zoom.reset(start=NOW)
    zoom.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom))
    auth = (created["username"], created["password"])
    before, _ = scrape(client)

    assert client.post("/instructor", auth=auth, json={"Email": "tess@example.com", "FirstName": "Tess",
                                                       "LastName": "Teacher"}).status_code == 200
    saved = client.post("/session", auth=auth, json=session_body("m-1", start=NOW + timedelta(minutes=5),
                                                                 InstructorEmails="tess@example.com"))
    assert saved.status_code == 200, saved.text
    email = base64.b64encode(b"jane@example.com").decode()
    launch = client.get(f"/session/m-1/user/{email}/url", auth=auth)  # the fast path
    assert launch.status_code == 200, launch.text
    assert client.get(f"/session/m-1/user/{email}/url", auth=auth,  # the FastAPI route: same template
                      headers={"debug": "true"}).status_code == 200
    assert client.get(f"/session/m-1/user/{email}/url").status_code == 401  # the fast path's refusal
    click = client.get(launch.json()["data"]["joinUrl"].removeprefix("http://testserver"))
    assert click.status_code == 302, click.text
    assert client.get("/l/not-a-launch-token").status_code in (400, 403)
    assert client.post("/webhooks/acme-zoom", content=b'{"event":"meeting.started"}',
                       headers={"x-zm-signature": "v0=" + "0" * 64,
                                "x-zm-request-timestamp": str(int(NOW.timestamp()))}).status_code == 403
    delivery = fixture_bytes("zoom", "webhook_participant_left.json")
    timestamp = str(int(NOW.timestamp()))
    digest = hmac.new(zoom.config.webhook_secret_token.encode(), f"v0:{timestamp}:".encode() + delivery,
                      hashlib.sha256).hexdigest()
    for _ in range(2):  # Zoom delivers again: the second is a duplicate
        assert client.post("/webhooks/acme-zoom", content=delivery,
                           headers={"x-zm-signature": f"v0={digest}", "x-zm-request-timestamp": timestamp,
                                    "content-type": "application/json"}).status_code == 200
    clock.set(NOW + timedelta(hours=3))  # past the part's end: its attendance job is due
    ran = client.portal.call(JobRunner(client.app.state.ctx, "test-worker").run_due)  # type: ignore[attr-defined]
    assert ran

    after, _ = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("viltbridge_http_requests_total", route="/session", method="POST", status="200") == 1
    assert moved("viltbridge_http_requests_total", route=LAUNCH_ROUTE, method="GET", status="200") == 2
    assert moved("viltbridge_http_requests_total", route=LAUNCH_ROUTE, method="GET", status="401") == 1
    assert moved("viltbridge_http_request_seconds_count", route=LAUNCH_ROUTE, method="GET") == 3
    assert moved("viltbridge_http_requests_total", route="/l/{token}", status="302") == 1
    assert moved("viltbridge_http_requests_total", route="/webhooks/{connection}", status="403") == 1
    assert not any(name == "viltbridge_http_requests_total" and "m-1" in dict(labels)["route"]
                   for name, labels in after)  # templates, never raw paths
    assert moved("viltbridge_launches_total", provider="zoom", outcome="personal_link") == 1
    assert moved("viltbridge_launches_total", provider="unknown", outcome="refused") == 1
    assert moved("viltbridge_provider_calls_total", provider="zoom") >= 2  # the meeting, the registrant
    assert moved("viltbridge_provider_call_seconds_count", provider="zoom") == moved(
        "viltbridge_provider_calls_total", provider="zoom")
    assert moved("viltbridge_token_renewals_total", provider="zoom", result="success") >= 1
    assert value(after, "viltbridge_circuit_breaker_state", provider="zoom", account=zoom.config.account_id) == 0
    assert moved("viltbridge_jobs_run_total", kind="attendance.collect") == 1
    assert moved("viltbridge_job_seconds_count", kind="attendance.collect") == 1
    assert moved("viltbridge_webhook_deliveries_total", provider="zoom", outcome="refused") == 1
    assert moved("viltbridge_webhook_deliveries_total", provider="zoom", outcome="accepted") == 1
    assert moved("viltbridge_webhook_deliveries_total", provider="zoom", outcome="duplicate") == 1
    # Read from the database at scrape time: the one part, its attendance collected.
    assert total(after, "viltbridge_parts") == 1
    assert value(after, "viltbridge_parts_attendance_overdue") == 0
    assert value(after, "viltbridge_jobs_dead") == 0


def test_held_fallback_429s_and_retries_are_told_apart(client: TestClient, db: Db, zoom: ZoomSimulator) -> None:
    zoom.reset(start=NOW)
    zoom.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom))
    auth = (created["username"], created["password"])
    before, _ = scrape(client)
    zoom.state.inject_fault(429, count=1, method="POST", path="meetings", retry_after="0")  # one 429, then it goes
    saved = client.post("/session", auth=auth, json=session_body("m-2", start=NOW + timedelta(minutes=5),
                                                                 InstructorEmails="tess@example.com"))
    assert saved.status_code == 200, saved.text
    zoom.state.inject_fault(400, count=20, path="registrants")  # registration refused: no personal link
    email = base64.b64encode(b"late@example.com").decode()
    join = client.get(f"/session/m-2/user/{email}/url", auth=auth).json()["data"]["joinUrl"]
    path = join.removeprefix("http://testserver")
    assert client.get(path).status_code == 200  # the holding page
    assert client.get(f"{path}?attempt=2").status_code == 302  # holds used up: Zoom's registration form
    zoom.state.clear_faults()
    after, _ = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("viltbridge_launches_total", provider="zoom", outcome="held") == 1
    assert moved("viltbridge_launches_total", provider="zoom", outcome="fallback") == 1
    assert moved("viltbridge_launches_total", provider="zoom", outcome="personal_link") == 0
    assert moved("viltbridge_provider_rate_limited_total", provider="zoom") == 1
    assert moved("viltbridge_provider_retries_total", provider="zoom") >= 1
    assert moved("viltbridge_provider_calls_total", provider="zoom", status="429") == 1
    assert moved("viltbridge_provider_calls_total", provider="zoom", status="400") >= 1


def test_a_part_not_final_a_day_after_it_ended_is_overdue(client: TestClient, db: Db, clock: FixedClock) -> None:
    created = db.create_connection()
    auth = (created["username"], created["password"])
    assert client.post("/session", auth=auth, json=session_body("old", start=NOW + timedelta(hours=1))).status_code \
        == 200
    samples, _ = scrape(client)
    assert value(samples, "viltbridge_parts", attendance_state="collecting") == 1
    assert value(samples, "viltbridge_parts_attendance_overdue") == 0
    assert total(samples, "viltbridge_jobs_in_ledger", kind="attendance.collect", state="queued") == 1
    assert total(samples, "viltbridge_job_queue_depth") == 0  # queued, not due before the part ends
    clock.set(NOW + timedelta(days=2))
    samples, _ = scrape(client)
    assert value(samples, "viltbridge_parts_attendance_overdue") == 1
    assert value(samples, "viltbridge_job_queue_depth", kind="attendance.collect") == 1


def test_metrics_need_the_token(client: TestClient) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert "viltbridge_http_requests_total" in answer.text


def test_without_a_token_metrics_do_not_exist(database_url: str, tmp_path: Path, clock: FixedClock) -> None:
    settings = Settings(database_url=database_url, secret_key=Fernet.generate_key().decode(),  # type: ignore[call-arg]
                        key_file=tmp_path / "key", _env_file=None)
    with TestClient(create_app(settings, clock=clock, public_url="http://testserver")) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404



DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "viltbridge.json"
METRIC_NAME = re.compile(r"\bviltbridge_[a-z0-9_]+")
SAMPLE_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@pytest.mark.pure
def test_the_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        service_unavailable("promtool is not installed (Debian package prometheus)")
        return
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Each alert fires on the series that should raise it, with the text an operator reads, and not before.
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=ALERTS.parent, capture_output=True,
                            text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def family_of(name: str) -> str:
    for suffix in SAMPLE_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def dashboard_expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, found in node.items():
            if key == "expr" and isinstance(found, str):
                yield found
            else:
                yield from dashboard_expressions(found)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_expressions(item)


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(client: TestClient) -> None:
    """So neither can go stale when a metric is renamed."""
    _, families = scrape(client)
    used_in_rules = set(METRIC_NAME.findall(ALERTS.read_text()))
    used_in_dashboard = {name for expression in dashboard_expressions(json.loads(DASHBOARD.read_text()))
                         for name in METRIC_NAME.findall(expression)}
    assert len(used_in_rules) >= 6 and len(used_in_dashboard) >= 14
    unknown = {name for name in used_in_rules | used_in_dashboard if family_of(name) not in families}
    assert not unknown, f"not exported: {sorted(unknown)}"
    alerts = ALERTS.read_text()
    for alert in ("TokenRenewalFailing", "CircuitBreakerOpen", "DeadJobs", "AttendanceNotFinal", "Http5xxRate"):
        assert f"alert: Viltbridge{alert}" in alerts
