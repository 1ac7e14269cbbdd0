"""One judgement of a connection's health, in words: ok, degraded or failing, and why.

The connections list and the connection's page both show this verdict, so they cannot disagree. It weighs what
this server process has seen of the provider (the adapter's health items: token, last call, circuit breaker,
settings) and what the job ledger holds for the connection (work retried after errors, work that died, meeting work
owed to the provider).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from viltbridge.core.provider import HealthItem
from viltbridge.store.console_views import Health


class Level(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # work is late or some calls fail; the provider is still reached
    FAILING = "failing"  # the provider cannot be used now: nothing new reaches it until the cause is fixed


@dataclass(frozen=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "no problem seen"


# An adapter's items that, when not ok, mean the provider cannot be used at all, and how to say so.
_FAILING_ITEMS = {
    "token": "token renewal failing",
    "circuit breaker": "circuit breaker open: calls to the provider are paused",
    "settings": "settings this version cannot use",
}


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def judge(seen: Sequence[HealthItem], ledger: Health) -> Verdict:
    failing: list[str] = []
    degraded: list[str] = []
    for item in seen:
        if item.ok is not False:
            continue
        if item.name in _FAILING_ITEMS:
            failing.append(_FAILING_ITEMS[item.name])
        else:
            degraded.append(f"{item.name} failed")
    if ledger.jobs_retrying:
        degraded.append(_plural(ledger.jobs_retrying, "job owed", "jobs owed") + " (retrying after errors)")
    dead = ledger.jobs.get("dead", 0)
    if dead:
        degraded.append(_plural(dead, "job dead", "jobs dead") + " (out of attempts)")
    if ledger.owed_meetings:
        degraded.append(_plural(ledger.owed_meetings, "part", "parts") + " waiting for meeting work at the provider")
    if failing:
        return Verdict(Level.FAILING, (*failing, *degraded))
    if degraded:
        return Verdict(Level.DEGRADED, tuple(degraded))
    return Verdict(Level.OK, ())
