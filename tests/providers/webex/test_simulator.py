"""The Webex simulator's behaviour beyond shapes (the spec test checks those): filters, the ~15-minute listing
delay, personal links that expire, the 302 of /meetings/join, and the scenario API over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx2
import pytest

from tests.providers.webex.conftest import COHOST, HOST, T0
from viltbridge.providers.webex.simulator import WebexSimulator

pytestmark = pytest.mark.pure

START = T0 + timedelta(hours=1)


def _create(api: httpx2.Client, **changes: Any) -> dict[str, Any]:
    body = {"title": "Class", "start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat(),
            "hostEmail": HOST.email, **changes}
    response = api.post("/meetings", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_list_meetings_filters_by_integration_tag_and_window(api: httpx2.Client) -> None:
    tagged = _create(api, integrationTags=["viltbridge:1:a"])
    _create(api, integrationTags=["viltbridge:1:b"])
    later = _create(api, start=(START + timedelta(days=10)).isoformat(),
                    end=(START + timedelta(days=10, hours=1)).isoformat())
    found = api.get("/meetings", params={"integrationTag": "viltbridge:1:a"}).json()["items"]
    assert [m["id"] for m in found] == [tagged["id"]]
    default_week = {m["id"] for m in api.get("/meetings").json()["items"]}
    assert tagged["id"] in default_week and later["id"] not in default_week


def test_an_ended_instance_is_listed_15_minutes_after_its_end(sim: WebexSimulator, api: httpx2.Client) -> None:
    meeting = _create(api)
    sim.state.join(meeting["id"], "Lee", "lee@example.com", at=START)
    query = {"meetingType": "meeting", "meetingSeriesId": meeting["id"]}
    assert [m["state"] for m in api.get("/meetings", params=query).json()["items"]] == ["inProgress"]
    sim.state.end_meeting(meeting["id"], at=START + timedelta(minutes=30))
    sim.state.set_clock(START + timedelta(minutes=44))
    assert api.get("/meetings", params=query).json()["items"] == []
    sim.state.set_clock(START + timedelta(minutes=45))
    assert [m["state"] for m in api.get("/meetings", params=query).json()["items"]] == ["ended"]


def test_join_links_are_personal_expire_and_redirect_unless_asked_not_to(sim: WebexSimulator,
                                                                         api: httpx2.Client) -> None:
    meeting = _create(api, invitees=[{"email": COHOST.email, "coHost": True}])
    body = {"meetingId": meeting["id"], "email": "lee@example.com", "displayName": "Lee", "expirationMinutes": 5}
    redirect = api.post("/meetings/join", json=body)
    assert redirect.status_code == 302 and "/webex/join/" in redirect.headers["location"]
    learner = api.post("/meetings/join", json={**body, "joinDirectly": False}).json()
    assert "startLink" not in learner  # only the host and cohosts may start
    cohost = api.post("/meetings/join", json={**body, "email": COHOST.email, "joinDirectly": False}).json()
    assert "/webex/start/" in cohost["startLink"]
    assert httpx2.get(learner["joinLink"]).status_code == 200
    sim.state.set_clock(T0 + timedelta(minutes=6))
    assert httpx2.get(learner["joinLink"]).status_code == 403


def test_the_scenario_api_works_over_http(sim: WebexSimulator, api: httpx2.Client) -> None:
    meeting = _create(api)
    joined = httpx2.post(f"{sim.base_url}/_sim/join",
                         json={"meeting_id": meeting["id"], "display_name": "Lee", "email": "lee@example.com"})
    assert joined.status_code == 200 and joined.json()["instance_id"].startswith(meeting["id"] + "_I_")
    assert httpx2.post(f"{sim.base_url}/_sim/nope", json={}).status_code == 404
    assert httpx2.post(f"{sim.base_url}/_sim/leave", json={"meeting_id": meeting["id"],
                                                           "who": "ghost"}).status_code == 400


def test_an_instance_cannot_be_edited_or_deleted(sim: WebexSimulator, api: httpx2.Client) -> None:
    meeting = _create(api)
    instance = sim.state.join(meeting["id"], "Lee", "lee@example.com", at=START)["instance_id"]
    assert api.patch(f"/meetings/{instance}", json={"title": "x"}).status_code == 400
    assert api.delete(f"/meetings/{instance}").status_code == 400
