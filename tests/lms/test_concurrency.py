"""Duplicate and racing requests, as Cornerstone and proxies send them: one meeting per part, no 500s,
no lost updates. Real HTTP against a server thread, several client threads at once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest

from tests.conftest import Db, session_body
from viltbridge.providers.link.adapter import LinkProvider


@pytest.fixture
def counted_creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts meetings created at the provider (the real link adapter, wrapped, with a provider's latency)."""
    created: list[str] = []

    create_meeting = LinkProvider.create_meeting

    async def counting_create(self: LinkProvider, spec: Any) -> Any:
        created.append(spec.session_key)
        await asyncio.sleep(0.05)  # a real provider takes time: the window in which duplicates would race
        return await create_meeting(self, spec)

    monkeypatch.setattr(LinkProvider, "create_meeting", counting_create)
    return created


def hammer(base_url: str, auth: tuple[str, str], calls: list[tuple[str, str, Any]]) -> list[int]:
    def one(call: tuple[str, str, Any]) -> int:
        method, path, body = call
        with httpx2.Client(base_url=base_url, auth=auth, timeout=30) as client:
            return client.request(method, path, json=body).status_code

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def test_identical_posts_racing_create_one_meeting(live_server: str, connection, db: Db, counted_creates) -> None:
    auth = (connection["username"], connection["password"])
    calls = [("POST", "/session", session_body(f"race-{n % 3}")) for n in range(9)]
    assert hammer(live_server, auth, calls) == [200] * 9
    assert sorted(counted_creates) == sorted({key for key in counted_creates})  # no session created twice
    assert len(counted_creates) == 3
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 3


def test_instructors_added_concurrently_never_fail(live_server: str, connection, db: Db) -> None:
    auth = (connection["username"], connection["password"])
    body = {"Email": "same@example.com", "FirstName": "S", "LastName": "T"}
    assert hammer(live_server, auth, [("POST", "/instructor", body)] * 6) == [200] * 6
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM instructors").scalar() == 1


def test_attendance_never_undoes_a_concurrent_edit(live_server: str, connection, db: Db, clock) -> None:
    from datetime import timedelta

    from tests.conftest import NOW

    auth = (connection["username"], connection["password"])
    with httpx2.Client(base_url=live_server, auth=auth) as client:
        assert client.post("/session", json=session_body("edit-me", start=NOW - timedelta(hours=3))).status_code == 200
    calls: list[tuple[str, str, Any]] = []
    for n in range(8):
        calls.append(("GET", "/session/edit-me/attendees", None))
        calls.append(("PUT", "/session/edit-me",
                      session_body("edit-me", start=NOW - timedelta(hours=3), Title=f"Edited {n}")))
    statuses = hammer(live_server, auth, calls)
    assert set(statuses) == {200}
    with httpx2.Client(base_url=live_server, auth=auth) as client:
        client.put("/session/edit-me", json=session_body("edit-me", start=NOW - timedelta(hours=3), Title="Last"))
        client.get("/session/edit-me/attendees")
    with db.engine.connect() as conn:
        title, state = conn.exec_driver_sql("SELECT title, attendance_state FROM sessions").one()
    assert (title, state) == ("Last", "final")
