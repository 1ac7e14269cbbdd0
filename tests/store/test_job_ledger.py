"""The job ledger on SQLite and PostgreSQL: one job per dedupe key, one winner per claim, retries with backoff,
dead after the last attempt, lost workers reaped, one run per periodic slot."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import NOW, Db
from viltbridge.core.models import JobRequest
from viltbridge.store import job_ledger as ledger

LEASE = timedelta(minutes=5)


def ask(db: Db, key: str = "meeting.sync:1", *, at=NOW, payload=None, max_attempts: int = 12) -> int:
    with db.session() as s, s.begin():
        return ledger.enqueue(s, JobRequest("meeting.sync", key, payload or {"session": 1}, at,
                                            max_attempts=max_attempts), NOW)


def job(db: Db, job_id: int) -> ledger.Job:
    with db.session() as s:
        found = ledger.get(s, job_id)
        assert found is not None
        return found


def claim(db: Db, job_id: int, owner: str = "w1", now=NOW) -> ledger.Job | None:
    with db.session() as s, s.begin():
        return ledger.claim(s, job_id, owner, now, LEASE)


def test_asking_twice_makes_one_job_that_runs_at_the_earlier_time_with_the_newer_payload(db: Db) -> None:
    first = ask(db, at=NOW + timedelta(minutes=10), payload={"v": 1})
    second = ask(db, at=NOW, payload={"v": 2})
    assert first == second
    queued = job(db, first)
    assert (queued.state, queued.run_after, queued.payload) == ("queued", NOW, {"v": 2})


def test_asking_while_it_runs_runs_it_once_more_and_asking_after_it_is_done_queues_it_afresh(db: Db) -> None:
    job_id = ask(db)
    assert claim(db, job_id) is not None
    ask(db)  # e.g. the LMS edits the session while its meeting is being created
    with db.session() as s, s.begin():
        assert ledger.finish(s, job_id, "w1", NOW) == "queued"
    assert claim(db, job_id) is not None
    with db.session() as s, s.begin():
        assert ledger.finish(s, job_id, "w1", NOW) == "done"
    assert job(db, job_id).state == "done"
    assert ask(db) == job_id and job(db, job_id).state == "queued"


def test_a_job_not_due_or_already_taken_cannot_be_claimed(db: Db) -> None:
    later = ask(db, "later", at=NOW + timedelta(minutes=1))
    assert claim(db, later) is None
    job_id = ask(db)
    assert claim(db, job_id, "w1") is not None
    assert claim(db, job_id, "w2") is None


def test_two_workers_racing_for_one_job_one_wins(db: Db) -> None:
    ids = [ask(db, f"race:{n}") for n in range(20)]
    winners: dict[int, list[str]] = {job_id: [] for job_id in ids}
    barrier = threading.Barrier(2)

    def worker(owner: str) -> None:
        barrier.wait()
        for job_id in ids:
            if claim(db, job_id, owner) is not None:
                winners[job_id].append(owner)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(owners) == 1 for owners in winners.values()), winners


def test_failures_back_off_honour_retry_after_and_end_dead_with_the_reason(db: Db) -> None:
    job_id = ask(db, max_attempts=3)
    claim(db, job_id)
    with db.session() as s, s.begin():
        assert ledger.fail(s, job_id, "w1", NOW, "Zoom answered 503") == "queued"
    assert job(db, job_id).run_after == NOW + timedelta(seconds=30)
    claim(db, job_id, now=NOW + timedelta(seconds=30))
    with db.session() as s, s.begin():  # the provider said Retry-After: 10 minutes, longer than the backoff
        assert ledger.fail(s, job_id, "w1", NOW, "429", retry_after=timedelta(minutes=10)) == "queued"
    assert job(db, job_id).run_after == NOW + timedelta(minutes=10)
    claim(db, job_id, now=NOW + timedelta(minutes=10))
    with db.session() as s, s.begin():
        assert ledger.fail(s, job_id, "w1", NOW, "Zoom answered 503 again") == "dead"
    dead = job(db, job_id)
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 3, "Zoom answered 503 again")
    with db.session() as s, s.begin():
        assert ledger.retry(s, job_id, NOW) and not ledger.retry(s, job_id, NOW)
    assert (job(db, job_id).state, job(db, job_id).attempts) == ("queued", 0)


def test_a_worker_that_vanished_is_reaped_and_cannot_finish_what_it_lost(db: Db) -> None:
    job_id = ask(db)
    claim(db, job_id, "killed")
    with db.session() as s, s.begin():
        assert ledger.reap(s, NOW + LEASE - timedelta(seconds=1)) == []  # still within its lease
        assert ledger.reap(s, NOW + LEASE + timedelta(seconds=1)) == [job_id]
    reaped = job(db, job_id)
    assert reaped.state == "queued" and reaped.attempts == 1 and "killed" in (reaped.last_error or "")
    assert claim(db, job_id, "survivor", now=NOW + LEASE + timedelta(seconds=2)) is not None
    with db.session() as s, s.begin():
        assert ledger.finish(s, job_id, "killed", NOW) is None  # a zombie's late answer changes nothing
        assert not ledger.renew(s, job_id, "killed", NOW, LEASE)
        assert ledger.finish(s, job_id, "survivor", NOW + LEASE) == "done"


def test_postponing_is_not_a_failure(db: Db) -> None:
    job_id = ask(db)
    claim(db, job_id)
    with db.session() as s, s.begin():
        assert ledger.postpone(s, job_id, "w1", NOW, NOW + timedelta(minutes=15), "report not final") == "queued"
    waiting = job(db, job_id)
    assert (waiting.attempts, waiting.run_after, waiting.last_error) == (0, NOW + timedelta(minutes=15),
                                                                         "report not final")


def test_each_periodic_slot_runs_once_however_many_workers_ask(db: Db) -> None:
    taken: list[str] = []
    barrier = threading.Barrier(3)

    def worker(owner: str) -> None:
        barrier.wait()
        with db.session() as s, s.begin():
            if ledger.take_slot(s, "reconcile", NOW, owner, NOW):
                taken.append(owner)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 1
    with db.session() as s, s.begin():
        assert ledger.take_slot(s, "reconcile", NOW + timedelta(minutes=1), "w9", NOW)
        assert ledger.forget_slots_before(s, NOW + timedelta(minutes=1)) == 1


def test_due_lists_what_may_run_now_oldest_first(db: Db) -> None:
    late = ask(db, "late", at=NOW - timedelta(minutes=1))
    early = ask(db, "early", at=NOW - timedelta(minutes=5))
    ask(db, "future", at=NOW + timedelta(minutes=5))
    with db.session() as s:
        assert ledger.due(s, NOW) == [early, late]


@pytest.mark.pure
@given(st.integers(min_value=1, max_value=60))
def test_backoff_doubles_and_is_capped_at_an_hour(attempts: int) -> None:
    delay = ledger.retry_delay(attempts)
    assert timedelta(seconds=30) <= delay <= timedelta(hours=1)
    assert ledger.retry_delay(attempts + 1) >= delay
