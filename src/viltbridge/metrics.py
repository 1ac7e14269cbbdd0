"""Every Prometheus metric viltbridge records, defined once here, beside `observability.py`, where every layer that
records one (providers, jobs, app, web) may import it.

Processes: `serve --workers N` and `viltbridge worker` are separate processes. With `PROMETHEUS_MULTIPROC_DIR` set
(before start: prometheus-client reads it on import), each process writes its samples to files in that directory and
`/metrics` adds them up (`exposition`). Without it, `/metrics` shows this process only. Gauges that describe the
database (queue depth, dead jobs, parts by attendance state) are not recorded here: `/metrics` reads them from the
database when it is scraped (`app/metrics.py`), so every replica reports the same, current values.

Labels take bounded values only (route templates, provider kinds, states): never a raw path, an email or an id a
client chose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import REGISTRY, Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Request latencies from a cached launch (about a millisecond) to a slow console page.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

http_requests = Counter(
    "viltbridge_http_requests", "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"])
http_request_seconds = Histogram(
    "viltbridge_http_request_seconds", "Time to answer an HTTP request, by route template and method",
    ["route", "method"], buckets=HTTP_BUCKETS)

# What a learner's click on /l/<token> came to.
LAUNCH_OUTCOMES = ("personal_link", "shared_link", "held", "fallback", "refused")
launches = Counter("viltbridge_launches", "Clicks on launch links, by provider and outcome", ["provider", "outcome"])

provider_calls = Counter(
    "viltbridge_provider_calls", "Provider API calls (each attempt), by provider, endpoint class and HTTP status "
    "(\"error\" when no answer came)", ["provider", "endpoint_class", "status"])
provider_call_seconds = Histogram(
    "viltbridge_provider_call_seconds", "Time of one provider API attempt, by provider and endpoint class",
    ["provider", "endpoint_class"], buckets=PROVIDER_BUCKETS)
provider_rate_limited = Counter(
    "viltbridge_provider_rate_limited", "Provider answers 429 (rate limited), by provider and endpoint class",
    ["provider", "endpoint_class"])
provider_retries = Counter(
    "viltbridge_provider_retries", "Provider calls attempted again after a failure, by provider and endpoint class",
    ["provider", "endpoint_class"])
# 0 closed, 1 half-open, 2 open. Live processes only, the highest of them: one process's open breaker shows.
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
circuit_breaker_state = Gauge(
    "viltbridge_circuit_breaker_state", "Circuit breaker per provider account: 0 closed, 1 half-open, 2 open",
    ["provider", "account"], multiprocess_mode="livemax")
token_renewals = Counter(
    "viltbridge_token_renewals", "Provider access token renewals, by provider and result (success, failure)",
    ["provider", "result"])

jobs_finished = Counter(
    "viltbridge_jobs_run", "Job runs, by kind and the state the run left the job in (done, queued again, dead, "
    "lost)", ["kind", "state"])
job_seconds = Histogram("viltbridge_job_seconds", "Time of one job run, by kind", ["kind"], buckets=JOB_BUCKETS)

WEBHOOK_OUTCOMES = ("accepted", "duplicate", "refused")
webhook_deliveries = Counter(
    "viltbridge_webhook_deliveries", "Provider webhook deliveries, by provider and outcome (accepted, duplicate, "
    "refused)", ["provider", "outcome"])


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_DIR_VARIABLE)
    return Path(value) if value else None


def _pid_of(sample_file: Path) -> int | None:
    """The process that wrote a file of the multiprocess directory (prometheus-client names them
    `<kind>_<pid>.db`)."""
    pid = sample_file.stem.rpartition("_")[2]
    return int(pid) if pid.isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def prepare_multiprocess_dir() -> None:
    """Before `serve` starts its processes: create the multiprocess directory, and remove the files of processes
    that are gone (an earlier run's), whose counts would otherwise add to this run's. The files of processes still
    running (`viltbridge worker`s sharing the directory) stay."""
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for sample_file in directory.glob("*.db"):
        pid = _pid_of(sample_file)
        if pid is None or not _running(pid):
            sample_file.unlink(missing_ok=True)


def process_exiting() -> None:
    """Drop this process's live gauges (the breaker states) from the multiprocess directory."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _registry() -> CollectorRegistry:
    """Every process's metrics with a multiprocess directory, else this process's."""
    if multiprocess_dir() is None:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def serve_on_localhost(port: int) -> None:
    """A `viltbridge worker` on a host without `serve`: its metrics on http://127.0.0.1:<port>/metrics, for a
    Prometheus (or an agent) on the same host. Localhost only, so no token."""
    from prometheus_client import start_http_server

    start_http_server(port, addr="127.0.0.1", registry=_registry())


def exposition(extra: Iterable[Metric] = ()) -> bytes:
    """The text Prometheus scrapes: every process's metrics (all of them with a multiprocess directory, else this
    process's) and `extra`, families read at scrape time."""
    return generate_latest(_Fixed([*_registry().collect(), *extra]))
