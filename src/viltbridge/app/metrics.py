"""The gauges `/metrics` reads from the database at scrape time (the metrics recorded as things happen are in
`viltbridge.metrics`): how many jobs wait, run and are dead, and where the parts' attendance stands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from viltbridge.app.uow import reading
from viltbridge.core.models import AttendanceState
from viltbridge.store.metrics_views import database_gauges

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext


async def scrape_time_families(ctx: AppContext) -> list[Metric]:
    now = ctx.clock.now()
    async with reading(ctx) as read:
        gauges = await read.db.run_sync(database_gauges, now)
    jobs = GaugeMetricFamily("viltbridge_jobs_in_ledger", "Jobs in the job ledger that are queued, running or dead, "
                             "by kind and state", labels=["kind", "state"])
    for (kind, state), count in sorted(gauges.jobs.items()):
        jobs.add_metric([kind, state], count)
    due = GaugeMetricFamily("viltbridge_job_queue_depth", "Queued jobs whose time has come, waiting for a worker, "
                            "by kind", labels=["kind"])
    for kind, count in sorted(gauges.jobs_due.items()):
        due.add_metric([kind], count)
    dead = GaugeMetricFamily("viltbridge_jobs_dead", "Dead jobs in the ledger (given up on; retry or cancel them in "
                             "the console)", value=sum(count for (_, state), count in gauges.jobs.items()
                                                       if state == "dead"))
    parts = GaugeMetricFamily("viltbridge_parts", "Scheduled (not cancelled) parts, by attendance state",
                              labels=["attendance_state"])
    for state in AttendanceState:  # every state, zero included, so a rule can compare them
        parts.add_metric([state.value], gauges.parts.get(state.value, 0))
    overdue = GaugeMetricFamily("viltbridge_parts_attendance_overdue", "Parts that ended over 24 hours ago whose "
                                "attendance is not final yet", value=gauges.parts_not_final_overdue)
    return [jobs, due, dead, parts, overdue]
