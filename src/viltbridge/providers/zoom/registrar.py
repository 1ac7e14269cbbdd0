"""Coalescing registration: when many learners launch at once, their registrations go to Zoom in batches.

Single registrations are Light calls (30 a second on Pro); a batch registers up to 30 people in one Heavy call
(10 a second on Pro), so a class of 500 clicking Launch together is registered in about two seconds instead of
seventeen. Batching adapts like Nagle's algorithm: a lone click is sent at once; clicks that arrive while a call for
the same meeting is under way wait for it and then go together. No fixed delay, and each click waits only for its
own batch, within its launch budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import Person
from viltbridge.providers.http import Budget
from viltbridge.providers.zoom.client import ZoomClient

BATCH_LIMIT = 30  # Zoom's maximum per batch_registrants call
# Registrations that answered after their click gave up are kept this long, so the launch page's second ask finds
# them without spending quota. Registrant links do not expire; the bound only limits memory.
ANSWERED_TTL_SECONDS = 15 * 60
ANSWERED_LIMIT = 20_000


@dataclass
class _Waiting:
    person: Person
    deadline: float  # loop time after which this click has been handed a fallback link
    answer: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Registrar:
    """Per meeting, gathers registrations for a moment and sends them together."""

    def __init__(self, client: ZoomClient, budget: Budget) -> None:
        self.client = client
        self.budget = budget
        self._queues: dict[str, list[_Waiting]] = {}
        self._busy: set[str] = set()  # meetings with a registration call under way
        self._flushers: set[asyncio.Task[None]] = set()
        self._answered: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}  # insertion order = age

    async def register(self, meeting_id: str, person: Person) -> dict[str, Any]:
        """The registrant (`registrant_id`, `join_url`) for `person`; raises ProviderFailed (or TimeoutError when
        the budget runs out) so the caller can hand out a fallback link instead. A registration that answers just
        after its click gave up is kept, so the next ask for the same person costs no quota."""
        loop = asyncio.get_running_loop()
        answered = self._answered.get((meeting_id, person.email.lower()))
        if answered is not None and answered[0] > loop.time():
            return answered[1]
        waiting = _Waiting(person, deadline=loop.time() + self.budget.total)
        self._queues.setdefault(meeting_id, []).append(waiting)
        if meeting_id not in self._busy:
            self._busy.add(meeting_id)  # here, not in the task: two clicks in one tick must not start two drains
            self._start(self._drain(meeting_id))
        return await asyncio.wait_for(asyncio.shield(waiting.answer), timeout=self.budget.total)

    def _start(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._flushers.add(task)  # keep a reference until done: the loop holds tasks only weakly
        task.add_done_callback(self._flushers.discard)

    async def _drain(self, meeting_id: str) -> None:
        """Send what waits, one call at a time per meeting, until nothing waits."""
        loop = asyncio.get_running_loop()
        try:
            while queue := self._queues.get(meeting_id):
                # Clicks whose budget ran out were handed the fallback already (and will ask again): spend no quota now.
                live = [w for w in queue if not w.answer.done() and w.deadline > loop.time()]
                batch, self._queues[meeting_id] = live[:BATCH_LIMIT], live[BATCH_LIMIT:]
                if batch:
                    await self._send(meeting_id, batch, min(w.deadline for w in batch) - loop.time())
        finally:
            self._busy.discard(meeting_id)
            if not self._queues.get(meeting_id):
                self._queues.pop(meeting_id, None)

    async def _send(self, meeting_id: str, batch: list[_Waiting], seconds_left: float) -> None:
        budget = replace(self.budget, total=max(0.1, seconds_left),
                         max_queue_wait=min(self.budget.max_queue_wait, max(0.05, seconds_left / 2)))
        try:
            if len(batch) == 1:
                person = batch[0].person
                rows = [await self.client.add_registrant(meeting_id, person.email, _first(person),
                                                         person.last_name or "", budget=budget)]
            else:
                rows = await self.client.batch_registrants(
                    meeting_id, [{"email": w.person.email, "first_name": _first(w.person),
                                  "last_name": w.person.last_name or ""} for w in batch], budget=budget)
        except Exception as err:  # any failure fails this batch (each click falls back); the drain goes on
            failure = err if isinstance(err, ProviderFailed | TimeoutError) else ProviderFailed(
                "zoom", f"registration failed unexpectedly: {err.__class__.__name__}")
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(failure)
                    waiting.answer.exception()  # mark retrieved: a click that gave up must not log a stray error
            return
        by_email = {str(row.get("email", "")).lower(): row for row in rows}
        for waiting in batch:
            row = by_email.get(waiting.person.email.lower()) if len(batch) > 1 else rows[0]
            if row and row.get("join_url") and row.get("registrant_id"):
                self._remember(meeting_id, waiting.person.email.lower(), row)
            if waiting.answer.done():
                continue
            if row and row.get("join_url") and row.get("registrant_id"):
                waiting.answer.set_result(row)
            else:
                waiting.answer.set_exception(ProviderFailed("zoom", "Zoom registered no link for this person."))
                waiting.answer.exception()

    def _remember(self, meeting_id: str, email: str, row: dict[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        self._answered.pop((meeting_id, email), None)
        self._answered[(meeting_id, email)] = (now + ANSWERED_TTL_SECONDS, row)
        while self._answered:
            oldest_key, (expires, _) = next(iter(self._answered.items()))
            if expires > now and len(self._answered) <= ANSWERED_LIMIT:
                break
            del self._answered[oldest_key]

    async def aclose(self) -> None:
        for task in list(self._flushers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _first(person: Person) -> str:
    return person.first_name or person.email.split("@")[0]
