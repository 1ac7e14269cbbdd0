"""The Zoom simulator over real HTTP: OAuth, users, meeting CRUD, start links, registrants, reports, rate limits,
faults, webhooks and the scenario API. The clock is frozen (conftest.T0) and moved only by the tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.fixtures import fixture_folder, fixture_json, fixture_names
from tests.providers.zoom.conftest import HTTP, T0, TEACHER, Receiver, api_client, create_meeting, get_token
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator
from viltbridge.providers.zoom.simulator.state import PLANS, RateLimiter, SimConfig, ZoomState

pytestmark = pytest.mark.pure



def _registration_meeting(api: httpx2.Client, approval_type: int = 0, **body: Any) -> dict[str, Any]:
    return create_meeting(api, settings={"approval_type": approval_type}, **body)


def _scripted_attendance(sim: ZoomSimulator, meeting_id: int, registrant_id: str) -> None:
    """Host from 09:00; Ann (registrant, not signed in) 09:01-09:20, back 09:25 on her phone as a guest; the
    co-teacher (signed in to the account) 09:05-09:40; the meeting ends 10:00."""
    state = sim.state
    state.start_meeting(meeting_id, at=T0)
    ann = state.join(meeting_id, "Ann Learner", registrant=registrant_id, at=T0 + timedelta(minutes=1))
    state.join(meeting_id, "Carl Co", user="co@example.edu", at=T0 + timedelta(minutes=5))
    state.reconnect(meeting_id, ann["participant_id"], at=T0 + timedelta(minutes=20), gap_seconds=300,
                    as_guest=True, name="Ann's iPhone")
    state.leave(meeting_id, "Carl Co", at=T0 + timedelta(minutes=40))
    state.end_meeting(meeting_id, at=T0 + timedelta(minutes=60))


# -- OAuth ------------------------------------------------------------------------------------------------------


def test_token_endpoint_issues_bearer_tokens(sim: ZoomSimulator) -> None:
    response = HTTP.post(sim.oauth_token_url, auth=(sim.config.client_id, sim.config.client_secret),
                         data={"grant_type": "account_credentials", "account_id": sim.config.account_id})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "api_url"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    assert body["api_url"] == sim.base_url and "meeting:write:admin" in body["scope"].split()
    # Zoom also accepts the parameters in the query string.
    query = HTTP.post(sim.oauth_token_url, auth=(sim.config.client_id, sim.config.client_secret),
                      params={"grant_type": "account_credentials", "account_id": sim.config.account_id})
    assert query.status_code == 200 and query.json()["access_token"] != body["access_token"]


GOOD_APP = ("simClientId0000000000A", "simClientSecret000000000000000A")
ACCOUNT = "simAccount0000000000A"


@pytest.mark.parametrize(("auth", "data", "error"), [
    ((GOOD_APP[0], "wrong"), {"grant_type": "account_credentials", "account_id": ACCOUNT}, "invalid_client"),
    (None, {"grant_type": "account_credentials", "account_id": ACCOUNT}, "invalid_client"),
    (GOOD_APP, {"account_id": ACCOUNT}, "invalid_request"),
    (GOOD_APP, {"grant_type": "client_credentials", "account_id": ACCOUNT}, "unsupported_grant_type"),
    (GOOD_APP, {"grant_type": "account_credentials", "account_id": "someone-else"}, "invalid_request"),
])
def test_token_endpoint_refuses_bad_requests(sim: ZoomSimulator, auth: tuple[str, str] | None,
                                             data: dict[str, str], error: str) -> None:
    headers = {} if auth is None else {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}
    response = HTTP.post(sim.oauth_token_url, headers=headers, data=data)
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["reason"]


def test_tokens_expire_and_can_be_revoked(sim: ZoomSimulator) -> None:
    with api_client(sim) as api:
        assert api.get(f"/users/{TEACHER}").status_code == 200
        sim.state.advance_clock(3599)
        assert api.get(f"/users/{TEACHER}").status_code == 200
        sim.state.advance_clock(1)
        expired = api.get(f"/users/{TEACHER}")
        assert expired.status_code == 401
        assert expired.json() == {"code": 124, "message": "Invalid access token."}
    assert HTTP.get(f"{sim.api_base_url}/users/{TEACHER}").status_code == 401  # no token at all
    with api_client(sim) as api:
        sim.state.revoke_tokens()
        assert api.get(f"/users/{TEACHER}").json()["code"] == 124


def test_token_without_the_scope_is_refused(sim: ZoomSimulator) -> None:
    sim.reset(start=T0, scopes=("user:read:admin",)).seed_user(TEACHER)
    with api_client(sim) as api:
        assert api.get(f"/users/{TEACHER}").status_code == 200
        refused = api.post(f"/users/{TEACHER}/meetings", json={"topic": "x"})
        assert refused.status_code == 400 and refused.json()["code"] == 4700
        assert "meeting:write:admin" in refused.json()["message"]


# -- Users ------------------------------------------------------------------------------------------------------


def test_user_lookup_by_id_email_and_me(api: httpx2.Client) -> None:
    by_email = api.get("/users/Teacher@Example.edu")
    assert by_email.status_code == 200
    user = by_email.json()
    assert user["email"] == TEACHER and user["type"] == 2 and user["status"] == "active"
    assert api.get(f"/users/{user['id']}").json() == user
    assert api.get("/users/me").json()["id"] == user["id"]
    missing = api.get("/users/nobody@example.edu")
    assert missing.status_code == 404
    assert missing.json() == {"code": 1001, "message": "User does not exist: nobody@example.edu."}


def test_create_and_update_users(sim: ZoomSimulator, api: httpx2.Client) -> None:
    info = {"email": "new.teacher@example.edu", "type": 2, "first_name": "New", "last_name": "Teacher"}
    created = api.post("/users", json={"action": "custCreate", "user_info": info})
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], **{k: info[k] for k in ("first_name", "last_name",
                                                                                   "email", "type")}}
    again = api.post("/users", json={"action": "custCreate", "user_info": info})
    assert again.status_code == 409 and again.json()["code"] == 1005
    invited = api.post("/users", json={"action": "create", "user_info": {**info, "email": "inv@example.edu"}})
    assert api.get(f"/users/{invited.json()['id']}").json()["status"] == "pending"  # until the email is accepted
    bad = api.post("/users", json={"action": "invent", "user_info": info})
    assert bad.status_code == 400
    assert bad.json() == {"code": 300, "message": "Validation Failed.",
                          "errors": [{"field": "action", "message": "Invalid field."}]}
    patched = api.patch(f"/users/{created.json()['id']}", json={"first_name": "Renamed", "type": 1})
    assert patched.status_code == 204 and patched.content == b""
    assert api.get("/users/new.teacher@example.edu").json()["first_name"] == "Renamed"
    assert api.patch("/users/ghost@example.edu", json={"type": 1}).status_code == 404


# -- Meetings ---------------------------------------------------------------------------------------------------


def test_meeting_crud_status_codes(sim: ZoomSimulator, api: httpx2.Client) -> None:
    sim.state.seed_user("co@example.edu")
    meeting = create_meeting(api, settings={"approval_type": 2, "alternative_hosts": "co@example.edu",
                                            "waiting_room": True})
    assert isinstance(meeting["id"], int) and meeting["id"] > 2**31  # int64 territory
    assert meeting["uuid"] and meeting["host_email"] == TEACHER and meeting["status"] == "waiting"
    assert "pwd=" in meeting["join_url"] and "zak=" in meeting["start_url"]
    assert meeting["settings"]["alternative_hosts"] == "co@example.edu"
    assert meeting["settings"]["waiting_room"] is True and meeting["settings"]["join_before_host"] is False
    assert "registration_url" not in meeting  # approval_type 2: no registration
    assert meeting["start_time"] == "2026-03-02T09:00:00Z" and meeting["timezone"] == "Europe/Berlin"
    mid = meeting["id"]

    fetched = api.get(f"/meetings/{mid}")
    assert fetched.status_code == 200
    assert fetched.json()["join_url"] == meeting["join_url"]
    assert fetched.json()["start_url"] != meeting["start_url"]  # a fresh host link each time

    patched = api.patch(f"/meetings/{mid}", json={"topic": "Algebra 101 (moved)",
                                                  "start_time": "2026-03-03T10:00:00", "timezone": "Europe/Berlin",
                                                  "settings": {"approval_type": 0}})
    assert patched.status_code == 204 and patched.content == b""
    after = api.get(f"/meetings/{mid}").json()
    assert after["topic"] == "Algebra 101 (moved)"
    assert after["start_time"] == "2026-03-03T09:00:00Z"  # local Berlin time without a Z, stored as UTC
    assert after["join_url"] == meeting["join_url"]  # links survive edits
    assert after["registration_url"].startswith(sim.base_url + "/meeting/register/")

    new_passcode = api.patch(f"/meetings/{mid}", json={"password": "n3wPass"})
    assert new_passcode.status_code == 204
    assert api.get(f"/meetings/{mid}").json()["join_url"] != meeting["join_url"]  # only a passcode change does

    assert api.delete(f"/meetings/{mid}").status_code == 204
    gone = api.get(f"/meetings/{mid}")
    assert gone.status_code == 404
    assert gone.json() == {"code": 3001, "message": f"Meeting does not exist: {mid}."}
    assert api.delete(f"/meetings/{mid}").status_code == 404
    assert api.patch(f"/meetings/{mid}", json={"topic": "x"}).status_code == 404
    assert api.put(f"/meetings/{mid}/status", json={"action": "recover"}).status_code == 204
    assert api.get(f"/meetings/{mid}").status_code == 200


def test_meeting_status_end_and_delete_while_running(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    sim.state.start_meeting(mid)
    assert api.get(f"/meetings/{mid}").json()["status"] == "started"
    running = api.delete(f"/meetings/{mid}")
    assert running.status_code == 400 and running.json()["code"] == 3002
    assert api.put(f"/meetings/{mid}/status", json={"action": "pause"}).status_code == 400
    assert api.put(f"/meetings/{mid}/status", json={"action": "end"}).status_code == 204
    assert api.get(f"/meetings/{mid}").json()["status"] == "waiting"
    assert api.get(f"/past_meetings/{mid}/instances").json()["meetings"][0]["start_time"] == "2026-03-02T09:00:00Z"


@pytest.mark.parametrize(("body", "field"), [
    ({"topic": "x" * 201}, "topic"),
    ({"password": "12345678901"}, "password"),
    ({"password": "has space"}, "password"),
    ({"type": 5}, "type"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"start_time": "next tuesday"}, "start_time"),
    ({"settings": {"approval_type": 3}}, "settings.approval_type"),
    ({"agenda": "a" * 2001}, "agenda"),
])
def test_meeting_validation(api: httpx2.Client, body: dict[str, Any], field: str) -> None:
    response = api.post(f"/users/{TEACHER}/meetings", json={"topic": "ok", **body})
    assert response.status_code == 400
    assert response.json()["code"] == 300 and response.json()["errors"][0]["field"] == field
    assert api.post(f"/users/{TEACHER}/meetings", content=b"[1, 2]").json() == {
        "code": 300, "message": "Request Body should be a valid JSON object."}


def test_hosts_and_alternative_hosts_must_be_licensed(sim: ZoomSimulator, api: httpx2.Client) -> None:
    sim.state.seed_user("basic@example.edu", type=1)
    sim.state.seed_user("gone@example.edu", status="inactive")
    refused = api.post("/users/basic@example.edu/meetings", json={"topic": "x"})
    assert refused.status_code == 400 and refused.json()["code"] == 3161
    assert api.post("/users/gone@example.edu/meetings", json={"topic": "x"}).json()["code"] == 3161
    assert api.post("/users/nobody@example.edu/meetings", json={"topic": "x"}).json()["code"] == 1001
    for alternative in ("basic@example.edu", "outsider@elsewhere.org"):
        response = api.post(f"/users/{TEACHER}/meetings", json={"settings": {"alternative_hosts": alternative}})
        assert response.status_code == 400 and alternative in response.json()["message"]
    # A host who loses the licence can no longer have the meeting updated.
    mid = create_meeting(api)["id"]
    sim.state.seed_user(TEACHER, type=1)
    assert api.patch(f"/meetings/{mid}", json={"topic": "y"}).json()["code"] == 3161
    sim.reset(start=T0, basic_hosts_allowed=True).seed_user("basic@example.edu", type=1)
    with api_client(sim) as lenient:
        assert lenient.post("/users/basic@example.edu/meetings", json={"topic": "x"}).status_code == 201


def test_start_url_expires_after_two_hours(sim: ZoomSimulator, api: httpx2.Client) -> None:
    meeting = create_meeting(api)
    assert HTTP.get(meeting["start_url"]).status_code == 200
    sim.state.advance_clock(2 * 3600 - 1)
    assert HTTP.get(meeting["start_url"]).status_code == 200
    sim.state.advance_clock(1)
    expired = HTTP.get(meeting["start_url"])
    assert expired.status_code == 403 and "expired" in expired.text
    with api_client(sim) as fresh_api:  # the old token died with the clock too
        fresh = fresh_api.get(f"/meetings/{meeting['id']}").json()["start_url"]
    assert HTTP.get(fresh).status_code == 200
    assert HTTP.get(meeting["join_url"]).status_code == 200  # the join link does not expire
    wrong = meeting["join_url"].replace("pwd=", "pwd=x")
    assert HTTP.get(wrong).status_code == 403


def test_cust_create_hosts_get_90_day_start_urls(sim: ZoomSimulator, api: httpx2.Client) -> None:
    sim.state.seed_user("isv.host@example.edu", cust_create=True)
    meeting = create_meeting(api, host="isv.host@example.edu")
    sim.state.advance_clock(89 * 86400)
    assert HTTP.get(meeting["start_url"]).status_code == 200
    sim.state.advance_clock(2 * 86400)
    assert HTTP.get(meeting["start_url"]).status_code == 403


def test_list_user_meetings_is_paginated(sim: ZoomSimulator, api: httpx2.Client) -> None:
    ids = {create_meeting(api, topic=f"Part {n}")["id"] for n in range(3)}
    first = api.get(f"/users/{TEACHER}/meetings", params={"page_size": 2}).json()
    assert first["total_records"] == 3 and first["page_count"] == 2 and len(first["meetings"]) == 2
    second = api.get(f"/users/{TEACHER}/meetings",
                     params={"page_size": 2, "next_page_token": first["next_page_token"]}).json()
    assert second["next_page_token"] == "" and second["page_number"] == 2
    assert {m["id"] for m in first["meetings"] + second["meetings"]} == ids


def test_meetings_keep_their_tracking_fields(sim: ZoomSimulator, api: httpx2.Client) -> None:
    """Create and GET answer them (with `visible`); the listing of a host's meetings has none (as in the spec);
    a PATCH that gives them replaces them."""
    marker = {"field": "viltbridge_session", "value": "7:sess-9"}
    made = create_meeting(api, tracking_fields=[marker])
    assert made["tracking_fields"] == [{**marker, "visible": True}]
    mid = made["id"]
    assert api.get(f"/meetings/{mid}").json()["tracking_fields"] == [{**marker, "visible": True}]
    [listed] = api.get(f"/users/{TEACHER}/meetings").json()["meetings"]
    assert listed["id"] == mid and "tracking_fields" not in listed
    assert api.patch(f"/meetings/{mid}", json={"topic": "Renamed"}).status_code == 204
    assert api.get(f"/meetings/{mid}").json()["tracking_fields"] == [{**marker, "visible": True}]
    other = {"field": "viltbridge_session", "value": "7:sess-10"}
    assert api.patch(f"/meetings/{mid}", json={"tracking_fields": [other]}).status_code == 204
    assert api.get(f"/meetings/{mid}").json()["tracking_fields"] == [{**other, "visible": True}]
    assert "tracking_fields" not in create_meeting(api)  # none given, none shown
    refused = api.post(f"/users/{TEACHER}/meetings", json={"topic": "x", "tracking_fields": [{"value": "v"}]})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "tracking_fields[0].field"


def test_tracking_fields_the_account_does_not_define_are_not_kept(sim: ZoomSimulator) -> None:
    sim.reset(start=T0, tracking_fields={"viltbridge_session": False})
    sim.state.seed_user(TEACHER)
    with api_client(sim) as api:
        made = create_meeting(api, tracking_fields=[{"field": "viltbridge_session", "value": "1:s"},
                                                    {"field": "Cost centre", "value": "42"}])
    assert made["tracking_fields"] == [{"field": "viltbridge_session", "value": "1:s", "visible": False}]


def test_upcoming_meetings_include_live_ones_and_stop_six_months_ahead(sim: ZoomSimulator,
                                                                       api: httpx2.Client) -> None:
    running = create_meeting(api, topic="Running", start_time="2026-03-02T08:00:00Z")["id"]
    soon = create_meeting(api, topic="Soon", start_time="2026-04-01T09:00:00Z")["id"]
    far = create_meeting(api, topic="Far", start_time="2026-12-01T09:00:00Z")["id"]
    past = create_meeting(api, topic="Past", start_time="2026-03-01T09:00:00Z")["id"]
    sim.state.start_meeting(running)

    def listed(kind: str) -> set[int]:
        return {m["id"] for m in api.get(f"/users/{TEACHER}/meetings", params={"type": kind}).json()["meetings"]}

    assert listed("upcoming") == listed("upcoming_meetings") == {running, soon}
    assert listed("scheduled") == {running, soon, far, past}
    assert listed("live") == {running}


# -- Registrants ------------------------------------------------------------------------------------------------


def test_registrants_need_registration(api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]  # approval_type 2 (default): no registration
    refused = api.post(f"/meetings/{mid}/registrants", json={"email": "ann@learner.org", "first_name": "Ann"})
    assert refused.status_code == 400
    assert refused.json() == {"code": 404, "message": f"Registration has not been enabled for this meeting: {mid}."}
    missing = api.post("/meetings/12345678901/registrants", json={"email": "a@b.org", "first_name": "A"})
    assert missing.status_code == 404 and missing.json()["code"] == 1001  # the spec's code on this route


def test_registrant_gets_a_personal_join_link(sim: ZoomSimulator, api: httpx2.Client) -> None:
    meeting = _registration_meeting(api)
    mid = meeting["id"]
    response = api.post(f"/meetings/{mid}/registrants",
                        json={"email": "ann@learner.org", "first_name": "Ann", "last_name": "Learner",
                              "custom_questions": [{"title": "LMS id", "value": "42"}]})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "registrant_id", "join_url", "participant_pin_code", "topic", "start_time"}
    assert body["id"] == mid and isinstance(body["participant_pin_code"], int)
    token = parse_qs(urlsplit(body["join_url"]).query)["tk"][0]
    assert token and body["join_url"] != meeting["join_url"]
    assert HTTP.get(body["join_url"]).status_code == 200
    assert sim.state.web_visits[-1]["registrant_id"] == body["registrant_id"]
    again = api.post(f"/meetings/{mid}/registrants", json={"email": "ANN@learner.org", "first_name": "Ann"})
    assert again.json()["registrant_id"] == body["registrant_id"]  # same person, same link
    listed = api.get(f"/meetings/{mid}/registrants").json()
    assert listed["total_records"] == 1 and listed["next_page_token"] == ""
    row = listed["registrants"][0]
    assert row["id"] == body["registrant_id"] and row["status"] == "approved"
    assert row["join_url"] == body["join_url"] and row["custom_questions"] == [{"title": "LMS id", "value": "42"}]
    assert api.delete(f"/meetings/{mid}/registrants/{body['registrant_id']}").status_code == 204
    assert HTTP.get(body["join_url"]).status_code == 403
    assert api.delete(f"/meetings/{mid}/registrants/{body['registrant_id']}").json()["code"] == 300


def test_manual_approval_withholds_the_link_until_approved(api: httpx2.Client) -> None:
    mid = _registration_meeting(api, approval_type=1)["id"]
    pending = api.post(f"/meetings/{mid}/registrants", json={"email": "bo@learner.org", "first_name": "Bo"}).json()
    assert "join_url" not in pending
    assert api.get(f"/meetings/{mid}/registrants").json()["total_records"] == 0
    assert api.get(f"/meetings/{mid}/registrants", params={"status": "pending"}).json()["total_records"] == 1
    approve = api.put(f"/meetings/{mid}/registrants/status",
                      json={"action": "approve", "registrants": [{"id": pending["registrant_id"]}]})
    assert approve.status_code == 204
    [row] = api.get(f"/meetings/{mid}/registrants").json()["registrants"]
    assert row["status"] == "approved" and "tk=" in row["join_url"]
    auto = api.post(f"/meetings/{mid}/registrants",
                    json={"email": "cy@learner.org", "first_name": "Cy", "auto_approve": True}).json()
    assert "join_url" in auto


def test_batch_registrants(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = _registration_meeting(api)["id"]
    people = [{"email": f"learner{n}@example.org", "first_name": f"L{n}"} for n in range(30)]
    response = api.post(f"/meetings/{mid}/batch_registrants", json={"registrants": people, "auto_approve": True})
    assert response.status_code == 201
    rows = response.json()["registrants"]
    assert len(rows) == 30 and {r["email"] for r in rows} == {p["email"] for p in people}
    assert all(set(r) == {"registrant_id", "email", "join_url", "participant_pin_code"} for r in rows)
    one_bad = api.post(f"/meetings/{mid}/batch_registrants",
                       json={"registrants": [{"email": "ok@example.org", "first_name": "Ok"},
                                             {"email": "not-an-email", "first_name": "Bad"}]})
    assert one_bad.status_code == 400 and one_bad.json()["errors"][0]["field"] == "registrants[1].email"
    listed = api.get(f"/meetings/{mid}/registrants", params={"page_size": 300}).json()["registrants"]
    assert "ok@example.org" not in {r["email"] for r in listed}  # all or nothing
    too_many = api.post(f"/meetings/{mid}/batch_registrants",
                        json={"registrants": [*people, {"email": "x@example.org", "first_name": "X"}]})
    assert too_many.status_code == 400 and too_many.json()["code"] == 300
    sim.state.advance_clock(1)  # batch is Heavy: 10 per second on Pro
    recurring = _registration_meeting(api, type=8, recurrence={"type": 1, "repeat_interval": 1, "end_times": 3})
    wrong_type = api.post(f"/meetings/{recurring['id']}/batch_registrants", json={"registrants": people[:1]})
    assert wrong_type.status_code == 400 and wrong_type.json()["code"] == 303
    page = api.get(f"/meetings/{mid}/registrants", params={"page_size": 25}).json()
    assert page["page_count"] == 2 and len(page["registrants"]) == 25 and page["next_page_token"]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(rows=st.integers(min_value=0, max_value=700), size=st.integers(min_value=1, max_value=400))
def test_paging_returns_every_row_once(rows: int, size: int) -> None:
    state = ZoomState(SimConfig(start=T0))
    data = list(range(rows))
    seen: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        chunk, meta = state.page("listing", data, str(size), token)
        seen += chunk
        pages += 1
        assert meta["page_size"] == min(size, 300) and meta["total_records"] == rows
        token = meta["next_page_token"]
        if not token:
            break
    assert seen == data and pages == max(meta["page_count"], 1)


# -- Reports ----------------------------------------------------------------------------------------------------


def test_report_has_one_row_per_segment_with_guests_anonymous(sim: ZoomSimulator, api: httpx2.Client) -> None:
    sim.state.seed_user("co@example.edu", first_name="Carl", last_name="Co")
    mid = _registration_meeting(api)["id"]
    reg = api.post(f"/meetings/{mid}/registrants", json={"email": "ann@learner.org", "first_name": "Ann"}).json()
    assert api.get(f"/report/meetings/{mid}/participants").status_code == 404  # not held yet
    _scripted_attendance(sim, mid, reg["registrant_id"])
    sim.state.advance_clock(3600)
    with api_client(sim) as fresh:
        early = fresh.get(f"/report/meetings/{mid}/participants", params={"include_fields": "registrant_id"})
        assert early.status_code == 200
        assert [row["duration"] for row in early.json()["participants"]] == [0, 0, 0, 0]  # not processed yet
        sim.state.mark_report_processed(mid)
        report = fresh.get(f"/report/meetings/{mid}/participants", params={"include_fields": "registrant_id"})
    body = report.json()
    assert body["total_records"] == 4 and body["next_page_token"] == "" and body["page_size"] == 30
    rows = {(row["name"], row["join_time"]): row for row in body["participants"]}
    host = rows[("Tess Teacher", "2026-03-02T09:00:00Z")]
    assert host["user_email"] == TEACHER and host["id"] == host["participant_user_id"] != ""
    assert host["duration"] == 3600 and host["leave_time"] == "2026-03-02T10:00:00Z"
    ann = rows[("Ann Learner", "2026-03-02T09:01:00Z")]
    assert ann["user_email"] == "" and ann["id"] == "" and ann["participant_user_id"] == ""
    assert ann["registrant_id"] == reg["registrant_id"] and ann["duration"] == 19 * 60
    phone = rows[("Ann's iPhone", "2026-03-02T09:25:00Z")]
    assert phone["registrant_id"] == "" and phone["user_email"] == "" and phone["duration"] == 35 * 60
    assert phone["user_id"] != ann["user_id"]  # a new per-join id on every rejoin
    carl = rows[("Carl Co", "2026-03-02T09:05:00Z")]
    assert carl["user_email"] == "co@example.edu" and carl["duration"] == 35 * 60
    assert all(set(row) >= {"id", "user_id", "name", "user_email", "join_time", "leave_time", "duration",
                            "registrant_id", "participant_user_id", "status"} for row in body["participants"])
    without = api_client(sim).get(f"/report/meetings/{mid}/participants").json()["participants"]
    assert all("registrant_id" not in row for row in without)  # only with include_fields=registrant_id
    past = api_client(sim).get(f"/past_meetings/{mid}/participants").json()
    assert past["total_records"] == 4 and {r["internal_user"] for r in past["participants"]} == {True, False}


def test_report_pagination_tokens_expire_after_15_minutes(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    sim.state.start_meeting(mid, at=T0)
    for n in range(7):
        sim.state.join(mid, f"Guest {n}", at=T0 + timedelta(minutes=n))
    sim.state.end_meeting(mid, at=T0 + timedelta(minutes=30))
    first = api.get(f"/report/meetings/{mid}/participants", params={"page_size": 3}).json()
    assert (first["page_count"], first["page_size"], first["total_records"]) == (3, 3, 8)
    assert len(first["participants"]) == 3 and first["next_page_token"]
    seen = [row["user_id"] for row in first["participants"]]
    token = first["next_page_token"]
    while token:
        page = api.get(f"/report/meetings/{mid}/participants", params={"page_size": 3, "next_page_token": token})
        assert page.status_code == 200
        seen += [row["user_id"] for row in page.json()["participants"]]
        token = page.json()["next_page_token"]
    assert len(seen) == len(set(seen)) == 8
    fresh = api.get(f"/report/meetings/{mid}/participants", params={"page_size": 3}).json()["next_page_token"]
    sim.state.advance_clock(15 * 60 + 1)
    stale = api.get(f"/report/meetings/{mid}/participants", params={"page_size": 3, "next_page_token": fresh})
    assert stale.status_code == 400
    assert stale.json() == {"code": 300, "message": "The next page token is invalid or expired."}
    capped = api.get(f"/report/meetings/{mid}/participants", params={"page_size": 1000}).json()
    assert capped["page_size"] == 300 and len(capped["participants"]) == 8


def test_report_by_instance_uuid_and_latest_instance(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    sim.state.start_meeting(mid, at=T0, uuid="/a//odd+uuid==")
    sim.state.join(mid, "Early Guest", at=T0 + timedelta(minutes=1))
    restarted = sim.state.restart_meeting(mid, at=T0 + timedelta(minutes=10), gap_seconds=60, rejoin=True)
    assert restarted["previous_uuid"] == "/a//odd+uuid==" and restarted["uuid"] != restarted["previous_uuid"]
    assert api.get(f"/report/meetings/{mid}/participants").json()["participants"][0]["leave_time"] == \
        "2026-03-02T09:10:00Z"  # numeric id: the latest ended instance (the second one is still running)
    sim.state.end_meeting(mid, at=T0 + timedelta(minutes=40))
    latest = api.get(f"/report/meetings/{mid}/participants").json()["participants"]
    assert {row["join_time"] for row in latest} == {"2026-03-02T09:11:00Z"}  # everyone rejoined the new instance
    double = quote(quote("/a//odd+uuid==", safe=""), safe="")
    first = api.get(f"/report/meetings/{double}/participants")
    assert first.status_code == 200 and first.json()["total_records"] == 2
    single = api.get(f"/report/meetings/{quote('/a//odd+uuid==', safe='')}/participants")
    assert single.status_code == 404  # a UUID starting with "/" must be double-encoded
    instances = api.get(f"/past_meetings/{mid}/instances").json()["meetings"]
    assert [i["uuid"] for i in instances] == ["/a//odd+uuid==", restarted["uuid"]]
    plain_uuid = quote(restarted["uuid"], safe="")
    assert api.get(f"/past_meetings/{plain_uuid}/participants").status_code == 200


def test_reports_need_a_paid_plan(sim: ZoomSimulator) -> None:
    sim.reset(start=T0, plan="free").seed_user(TEACHER)
    with api_client(sim) as api:
        mid = create_meeting(api)["id"]
        sim.state.start_meeting(mid)
        sim.state.end_meeting(mid)
        response = api.get(f"/report/meetings/{mid}/participants")
        assert response.status_code == 400 and response.json()["code"] == 200


# -- Rate limits and faults -------------------------------------------------------------------------------------


def test_per_second_limits_answer_429_with_headers(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    sim.state.start_meeting(mid)
    sim.state.end_meeting(mid)
    sim.state.advance_clock(1)
    statuses = [api.get(f"/report/meetings/{mid}/participants") for _ in range(11)]  # Heavy: 10/s on Pro
    assert [r.status_code for r in statuses] == [200] * 10 + [429]
    limited = statuses[-1]
    assert limited.json() == {"code": 429, "message": "You have reached the maximum per-second rate limit for "
                                                      "this API. Try again later."}
    assert limited.headers["X-RateLimit-Category"] == "Heavy" and limited.headers["X-RateLimit-Type"] == "QPS"
    assert limited.headers["X-RateLimit-Limit"] == "10" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert statuses[0].headers["X-RateLimit-Type"] == "Daily-limit"  # Heavy has a daily pool on Pro
    assert int(statuses[0].headers["X-RateLimit-Remaining"]) == 30000 - 1
    assert api.get(f"/meetings/{mid}").status_code == 200  # other categories are counted apart
    sim.state.advance_clock(1)
    assert api.get(f"/report/meetings/{mid}/participants").status_code == 200


def test_daily_limits_reset_at_utc_midnight() -> None:
    limiter = RateLimiter(PLANS["free"], host_daily=100)
    moment = T0
    for _ in range(1000):  # free plan: Heavy 1/s and 1,000/day
        limiter.charge("Heavy", moment)
        moment += timedelta(seconds=1)
    with pytest.raises(Exception) as caught:
        limiter.charge("Heavy", moment)
    error: Any = caught.value
    assert error.status == 429 and "daily rate limit" in error.message
    assert error.headers["Retry-After"] == "2026-03-03T00:00:00Z"
    assert error.headers["X-RateLimit-Type"] == "Daily-limit"
    limiter.charge("Heavy", T0.replace(day=3, hour=0))


def test_100_meeting_creates_or_updates_per_host_per_day(sim: ZoomSimulator) -> None:
    sim.state.set_plan("business", enforce_rate_limits=True)
    with api_client(sim) as api:
        mid = create_meeting(api)["id"]
        for n in range(99):
            if n % 50 == 0:
                sim.state.advance_clock(1)  # stay under the per-second limits
            assert api.patch(f"/meetings/{mid}", json={"agenda": f"edit {n}"}).status_code == 204
        limited = api.patch(f"/meetings/{mid}", json={"agenda": "one too many"})
        assert limited.status_code == 429
        assert limited.json()["message"].startswith("You have exceeded the daily rate limit (100) of Meeting "
                                                    "Create/Update API requests permitted for this particular user.")
        assert limited.headers["Retry-After"] == "2026-03-03T00:00:00Z"
        assert api.post(f"/users/{TEACHER}/meetings", json={"topic": "x"}).status_code == 429
        assert api.get(f"/meetings/{mid}").status_code == 200  # reads are not capped
        sim.state.seed_user("other@example.edu")
        assert api.post("/users/other@example.edu/meetings", json={"topic": "x"}).status_code == 201
    sim.state.set_clock("2026-03-03T00:00:00Z")
    with api_client(sim) as api:
        assert api.patch(f"/meetings/{mid}", json={"agenda": "new day"}).status_code == 204


def test_injected_429_storm_5xx_and_slow_answers(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    sim.state.inject_fault(429, count=3, path="/meetings/", retry_after="1")
    storm = [api.get(f"/meetings/{mid}") for _ in range(4)]
    assert [r.status_code for r in storm] == [429, 429, 429, 200]
    assert storm[0].headers["Retry-After"] == "1" and storm[0].headers["X-RateLimit-Category"] == "Light"
    sim.state.inject_fault(503, method="PATCH")
    failed = api.patch(f"/meetings/{mid}", json={"topic": "x"})
    assert failed.status_code == 503 and failed.json() == {"code": 503, "message": "Service Unavailable"}
    assert api.get(f"/meetings/{mid}").json()["topic"] == "Algebra 101"  # the failed call changed nothing
    sim.state.inject_fault(delay=0.5, path="/meetings/")
    with pytest.raises(httpx2.TimeoutException):
        api.get(f"/meetings/{mid}", timeout=0.1)
    assert api.get(f"/meetings/{mid}").status_code == 200
    sim.state.inject_fault(500, count=5, path="/oauth/token")
    token = HTTP.post(sim.oauth_token_url, auth=(sim.config.client_id, sim.config.client_secret),
                      data={"grant_type": "account_credentials", "account_id": sim.config.account_id})
    assert token.status_code == 500
    sim.state.clear_faults()
    assert get_token(sim)


# -- Webhooks ---------------------------------------------------------------------------------------------------


def _verified(sim: ZoomSimulator, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Check Zoom's signature the way a receiver must, computed here independently of the simulator."""
    timestamp = headers["x-zm-request-timestamp"]
    message = f"v0:{timestamp}:".encode() + body
    expected = "v0=" + hmac.new(sim.config.webhook_secret_token.encode(), message, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-zm-signature"], expected)
    return dict(json.loads(body))


def test_signed_webhooks_for_a_meeting(sim: ZoomSimulator, api: httpx2.Client, receiver: Receiver) -> None:
    sim.state.seed_user("co@example.edu", first_name="Carl", last_name="Co")
    meeting = _registration_meeting(api)
    mid = meeting["id"]
    reg = api.post(f"/meetings/{mid}/registrants", json={"email": "ann@learner.org", "first_name": "Ann"}).json()
    _scripted_attendance(sim, mid, reg["registrant_id"])
    assert receiver.events() == [
        "meeting.started", "meeting.participant_joined", "meeting.participant_joined", "meeting.participant_joined",
        "meeting.participant_left", "meeting.participant_joined", "meeting.participant_left",
        "meeting.participant_left", "meeting.participant_left", "meeting.ended"]
    payloads = [_verified(sim, headers, body) for headers, body in receiver.requests]
    started = payloads[0]
    assert started["payload"]["account_id"] == sim.config.account_id
    assert started["payload"]["object"]["id"] == str(mid) and started["payload"]["object"]["uuid"] == meeting["uuid"]
    assert started["event_ts"] == int(T0.timestamp() * 1000)
    ann_joined = payloads[2]["payload"]["object"]
    assert ann_joined["host_id"] == meeting["host_id"] and ann_joined["topic"] == "Algebra 101"
    participant = ann_joined["participant"]
    assert participant["user_name"] == "Ann Learner" and participant["join_time"] == "2026-03-02T09:01:00Z"
    assert participant["email"] == "" and participant["id"] == "" and participant["participant_user_id"] == ""
    assert participant["registrant_id"] == reg["registrant_id"] and participant["user_id"]
    assert participant["participant_uuid"]
    left = payloads[4]["payload"]["object"]["participant"]
    assert left["leave_time"] == "2026-03-02T09:20:00Z" and left["leave_reason"]
    assert left["user_id"] == participant["user_id"]
    guest = payloads[5]["payload"]["object"]["participant"]
    assert guest["user_name"] == "Ann's iPhone" and guest["registrant_id"] == "" and guest["email"] == ""
    assert payloads[-1]["payload"]["object"]["end_time"] == "2026-03-02T10:00:00Z"
    delivered = sim.state.webhooks_sent()
    assert [d["status"] for d in delivered] == [200] * 10
    assert delivered[0]["headers"]["x-zm-signature"] == receiver.requests[0][0]["x-zm-signature"]


def test_waiting_room_webhooks(sim: ZoomSimulator, api: httpx2.Client, receiver: Receiver) -> None:
    """Someone waiting to be admitted shows up in Zoom's waiting-room events (with `date_time`), not as a join."""
    mid = create_meeting(api, settings={"waiting_room": True})["id"]
    sim.state.start_meeting(mid, at=T0)
    sim.state.join(mid, "Waiting Will", waiting_room=True, at=T0 + timedelta(minutes=2))
    sim.state.leave(mid, "Waiting Will", at=T0 + timedelta(minutes=7))
    assert receiver.events() == ["meeting.started", "meeting.participant_joined",  # the host
                                 "meeting.participant_joined_waiting_room", "meeting.participant_left_waiting_room"]
    joined, left = (json.loads(body)["payload"]["object"]["participant"] for _, body in receiver.requests[2:])
    assert joined["date_time"] == "2026-03-02T09:02:00Z" and "join_time" not in joined
    assert left["date_time"] == "2026-03-02T09:07:00Z" and left["user_id"] == joined["user_id"]


def test_api_end_sends_webhooks_after_the_response(sim: ZoomSimulator, api: httpx2.Client,
                                                   receiver: Receiver) -> None:
    mid = create_meeting(api)["id"]
    sim.state.start_meeting(mid)
    assert api.put(f"/meetings/{mid}/status", json={"action": "end"}).status_code == 204
    sim.state.drain_webhooks()  # waits for the delivery that runs after the response
    assert receiver.events()[-2:] == ["meeting.participant_left", "meeting.ended"]


def test_url_validation_challenge(sim: ZoomSimulator, receiver: Receiver) -> None:
    result = sim.state.validate_webhook_endpoint(plain_token="qgg8vlvZRS6UYooatFL8Aw")
    assert result["ok"] is True
    headers, body = receiver.requests[-1]
    payload = _verified(sim, headers, body)
    assert payload["event"] == "endpoint.url_validation"
    assert payload["payload"] == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}
    receiver.secret = "not-the-secret"
    assert sim.state.validate_webhook_endpoint()["ok"] is False


def test_webhooks_can_be_held_reordered_and_duplicated(sim: ZoomSimulator, api: httpx2.Client,
                                                        receiver: Receiver) -> None:
    mid = create_meeting(api)["id"]
    sim.state.hold_webhooks()
    sim.state.start_meeting(mid, host_joins=False)
    sim.state.join(mid, "Guest", at=T0 + timedelta(minutes=1))
    sim.state.end_meeting(mid, at=T0 + timedelta(minutes=2))
    assert receiver.requests == []
    sent = sim.state.release_webhooks(order="reversed", duplicate=1)
    assert [d["event"] for d in sent] == [
        "meeting.ended", "meeting.ended", "meeting.participant_left", "meeting.participant_left",
        "meeting.participant_joined", "meeting.participant_joined", "meeting.started", "meeting.started"]
    assert receiver.events() == [d["event"] for d in sent]
    again = sim.state.redeliver_webhook(sent[0]["seq"])
    assert again[0]["body"] == sent[0]["body"] and len(receiver.requests) == 9


def test_failed_deliveries_are_retried_on_zoom_schedule(sim: ZoomSimulator, api: httpx2.Client,
                                                        receiver: Receiver) -> None:
    mid = create_meeting(api)["id"]
    receiver.status = 500
    sim.state.start_meeting(mid, host_joins=False)
    assert len(receiver.requests) == 1
    assert sim.state.advance_clock(4 * 60 + 59)["webhook_retries"] == 0
    assert sim.state.advance_clock(1)["webhook_retries"] == 1  # 5 minutes after the first attempt
    receiver.status = 200
    assert sim.state.advance_clock(20 * 60)["webhook_retries"] == 1
    attempts = [(d["attempt"], d["status"]) for d in sim.state.webhooks_sent()]
    assert attempts == [(1, 500), (2, 500), (3, 200)]
    assert sim.state.advance_clock(3600)["webhook_retries"] == 0


# -- Scenario API over HTTP, CLI, fixtures ----------------------------------------------------------------------


def test_scenario_api_over_http(sim: ZoomSimulator, api: httpx2.Client) -> None:
    mid = create_meeting(api)["id"]
    def post(method: str, **kwargs: Any) -> httpx2.Response:
        return HTTP.post(f"{sim.base_url}/_sim/{method}", json=kwargs)

    assert post("seed_user", email="guest.host@example.edu", type=2).json()["email"] == "guest.host@example.edu"
    started = post("start_meeting", meeting_id=mid, at="2026-03-02T09:00:00Z").json()
    joined = post("join", meeting_id=mid, name="Dora", at="2026-03-02T09:02:00Z").json()
    post("leave", meeting_id=mid, participant=joined["participant_id"], at="2026-03-02T09:30:00Z")
    assert post("end_meeting", meeting_id=mid, at="2026-03-02T09:45:00Z").json()["uuid"] == started["uuid"]
    post("mark_report_processed", meeting=mid)
    rows = api.get(f"/report/meetings/{mid}/participants").json()["participants"]
    assert [(r["name"], r["duration"]) for r in rows] == [("Tess Teacher", 45 * 60), ("Dora", 28 * 60)]
    assert HTTP.get(f"{sim.base_url}/_sim/now").json() == "2026-03-02T09:00:00Z"
    assert post("advance_clock", seconds=60).json()["now"] == "2026-03-02T09:01:00Z"
    assert post("join", meeting_id=mid).status_code == 400  # missing name
    assert post("leave", meeting_id=mid, participant="nobody").status_code == 400
    assert post("no_such_thing").status_code == 404
    assert HTTP.get(f"{sim.base_url}/_sim/snapshot").json()["meetings"][0]["id"] == mid


def test_runs_as_a_module_for_demos(tmp_path: Path) -> None:
    with running_simulator() as probe:  # borrow a free port
        port = int(probe.base_url.rsplit(":", 1)[1])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "viltbridge.providers.zoom.simulator", "--port", str(port), "--user", TEACHER],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a fresh interpreter importing the simulator: slow on a busy machine
        while True:
            try:
                token = HTTP.post(f"{base}/oauth/token", auth=GOOD_APP,
                                  data={"grant_type": "account_credentials", "account_id": ACCOUNT})
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "simulator did not come up"
                time.sleep(0.05)
        user = HTTP.get(f"{base}/v2/users/{TEACHER}",
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert user.status_code == 200 and user.json()["type"] == 2
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode()
    assert f"API base URL     {base}/v2" in output


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_fixtures_have_the_shapes_the_simulator_produces(sim: ZoomSimulator, api: httpx2.Client,
                                                          receiver: Receiver) -> None:
    sim.state.seed_user("co@example.edu", first_name="Carl", last_name="Co")
    mid = _registration_meeting(api)["id"]
    reg = api.post(f"/meetings/{mid}/registrants", json={"email": "ann@learner.org", "first_name": "Ann"}).json()
    _scripted_attendance(sim, mid, reg["registrant_id"])
    sim.state.validate_webhook_endpoint()
    sim.state.mark_report_processed(mid)
    produced: dict[str, list[Any]] = {}
    for _, body in receiver.requests:
        payload = json.loads(body)
        produced.setdefault(payload["event"], []).append(_shape(payload))
    report = api.get(f"/report/meetings/{mid}/participants", params={"include_fields": "registrant_id"}).json()
    fixtures = {name: fixture_json("zoom", name) for name in fixture_names("zoom", "*.json")}
    assert len(fixtures) >= 9, f"fixtures missing in {fixture_folder('zoom')}"
    for name, fixture in fixtures.items():
        if name.startswith("webhook_"):
            assert _shape(fixture) in produced[fixture["event"]], name
        elif name.startswith("signed_delivery_"):
            headers, body = fixture["headers"], fixture["body"].encode()
            message = f"v0:{headers['x-zm-request-timestamp']}:".encode() + body
            digest = hmac.new(fixture["secret_token"].encode(), message, hashlib.sha256).hexdigest()
            assert headers["x-zm-signature"] == f"v0={digest}", name
            assert _shape(json.loads(body)) in produced[json.loads(body)["event"]], name
        else:
            assert _shape(fixture) == _shape(report), name
