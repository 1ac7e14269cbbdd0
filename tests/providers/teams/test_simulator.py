"""The Graph simulator over plain HTTP: OData shapes, timestamps, paging, status codes, errors, scenario API."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest

from tests.providers.fixtures import fixture_json
from viltbridge.providers.teams.simulator import TeamsSimulator

from .conftest import COHOST, HOST, get_token

pytestmark = pytest.mark.pure

SEVEN_DIGITS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


def fixture(name: str) -> Any:
    return fixture_json("teams", name)


def create(api: httpx2.Client, organizer: str = HOST.email, **body: Any) -> dict[str, Any]:
    payload = {**fixture("create_meeting_request.json"), "participants": {"attendees": []}, **body}
    response = api.post(f"/users/{organizer}/onlineMeetings", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_token_endpoint_answers_like_entra(sim: TeamsSimulator) -> None:
    config = sim.config
    url = f"{sim.base_url}/{config.tenant_id}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": config.client_secret,
            "scope": "https://graph.microsoft.com/.default"}
    ok = httpx2.post(url, data=form)
    assert ok.status_code == 200
    assert set(ok.json()) == set(fixture("token_response.json"))
    wrong = httpx2.post(url, data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client" and wrong.json()["error_codes"] == [7000215]


def test_calls_without_a_valid_token_get_401(sim: TeamsSimulator) -> None:
    response = httpx2.get(f"{sim.graph_base_url}/users/{HOST.email}", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_created_meeting_has_graphs_shape(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    expected = fixture("create_meeting_response.json")
    assert set(expected) <= set(meeting)
    assert meeting["@odata.context"].endswith("/onlineMeetings/$entity")
    assert set(expected["participants"]["organizer"]["identity"]["user"]) == set(
        meeting["participants"]["organizer"]["identity"]["user"])
    for key in ("creationDateTime", "startDateTime", "endDateTime"):
        assert SEVEN_DIGITS.match(meeting[key]), meeting[key]
    assert meeting["startDateTime"].startswith("2026-03-02T09:00:00.000000")
    assert httpx2.get(meeting["joinWebUrl"]).status_code == 200  # the join link leads somewhere


def test_patch_answers_200_with_the_meeting_and_needs_both_times(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    path = f"/users/{HOST.email}/onlineMeetings/{meeting['id']}"
    half = api.patch(path, json={"startDateTime": "2026-03-02T10:00:00Z"})
    assert half.status_code == 400 and half.json()["error"]["code"] == "BadRequest"
    both = api.patch(path, json={"subject": "Moved", "startDateTime": "2026-03-02T10:00:00Z",
                                 "endDateTime": "2026-03-02T11:00:00Z"})
    assert both.status_code == 200
    assert both.json()["subject"] == "Moved" and both.json()["joinWebUrl"] == meeting["joinWebUrl"]


def test_delete_answers_204_and_the_meeting_is_gone(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    path = f"/users/{HOST.email}/onlineMeetings/{meeting['id']}"
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404


def test_users_are_read_by_upn_and_found_by_mail_or_proxy_address(sim: TeamsSimulator, api: httpx2.Client) -> None:
    ada = sim.state.seed_user("ada.l@acmecorp.onmicrosoft.com", mail="ada.lovelace@acme.example",
                              aliases=["countess@acme.example"])
    assert api.get("/users/ada.l@acmecorp.onmicrosoft.com").json()["id"] == ada["id"]
    missing = api.get("/users/ada.lovelace@acme.example")  # a mail address that is not the UPN: 404
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    for expression in ("mail eq 'Ada.Lovelace@acme.example'", "proxyAddresses/any(x:x eq 'smtp:countess@acme.example')",
                       "proxyAddresses/any(p:p eq 'smtp:ada.lovelace@acme.example')"):
        found = api.get("/users", params={"$filter": expression})
        assert found.status_code == 200 and [u["id"] for u in found.json()["value"]] == [ada["id"]], expression
    nobody = api.get("/users", params={"$filter": "mail eq 'nobody@acme.example'"})
    assert nobody.status_code == 200 and nobody.json()["value"] == []


def test_create_or_get_returns_the_earlier_meeting(sim: TeamsSimulator, api: httpx2.Client) -> None:
    body = {**fixture("create_meeting_request.json"), "participants": {"attendees": []}, "externalId": "1:s"}
    first = api.post(f"/users/{HOST.email}/onlineMeetings/createOrGet", json=body)
    again = api.post(f"/users/{HOST.email}/onlineMeetings/createOrGet", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def test_create_or_get_ignores_what_it_does_not_document(sim: TeamsSimulator, api: httpx2.Client) -> None:
    # Its documented body is subject, times, participants and externalId: meeting options there are not applied.
    body = {**fixture("create_meeting_request.json"), "participants": {"attendees": []}, "externalId": "1:o",
            "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
            "allowedPresenters": "organizer", "allowMeetingChat": "disabled", "recordAutomatically": True,
            "isEntryExitAnnounced": False}
    made = api.post(f"/users/{HOST.email}/onlineMeetings/createOrGet", json=body).json()
    assert made["subject"] == body["subject"]
    assert made["lobbyBypassSettings"]["scope"] == "organization" and made["allowedPresenters"] == "everyone"
    assert made["allowMeetingChat"] == "enabled" and made["recordAutomatically"] is False
    assert made["isEntryExitAnnounced"] is True
    patched = api.patch(f"/users/{HOST.email}/onlineMeetings/{made['id']}",
                        json={"allowMeetingChat": "disabled", "recordAutomatically": True}).json()
    assert patched["allowMeetingChat"] == "disabled" and patched["recordAutomatically"] is True


def test_without_an_access_policy_graph_refuses_with_403(sim: TeamsSimulator, api: httpx2.Client) -> None:
    sim.state.set_policy(HOST.email, granted=False)
    response = api.post(f"/users/{HOST.email}/onlineMeetings", json=fixture("create_meeting_request.json"))
    assert response.status_code == 403
    error = response.json()["error"]
    documented = fixture("error_access_policy.json")["error"]  # the current docs' example
    assert (error["code"], error["message"]) == (documented["code"], documented["message"])
    assert error["message"] == "No Application Access Policy found for this app"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


def test_coorganizers_are_kept_as_attendees(sim: TeamsSimulator, api: httpx2.Client) -> None:
    cohost_id = sim.state.user(COHOST.email).id
    meeting = create(api, participants={"attendees": [
        {"upn": COHOST.email, "role": "coorganizer", "identity": {"user": {"id": cohost_id}}}]})
    [attendee] = meeting["participants"]["attendees"]
    assert attendee["role"] == "coorganizer" and attendee["identity"]["user"]["id"] == cohost_id


def test_a_throttled_call_gets_429_with_retry_after(sim: TeamsSimulator, api: httpx2.Client) -> None:
    sim.state.throttle(count=1, retry_after="7")
    response = api.get(f"/users/{HOST.email}")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert api.get(f"/users/{HOST.email}").status_code == 200


def test_records_are_paged_with_next_links(sim: TeamsSimulator, api: httpx2.Client) -> None:
    sim.reset(start=sim.state.now(), records_page_size=2)
    sim.state.seed_user(HOST.email)
    api.headers["Authorization"] = f"Bearer {get_token(sim)}"  # the reset tenant forgot earlier tokens
    meeting = create(api)
    for name in ("Ann", "Bo", "Cy", "Di", "Ed"):
        sim.state.join(meeting["id"], name)
    sim.state.advance(60)
    report_id = sim.state.end_meeting(meeting["id"])["report_id"]
    url: str | None = f"/users/{HOST.email}/onlineMeetings/{meeting['id']}/attendanceReports/{report_id}/" \
                      "attendanceRecords"
    names: list[str] = []
    pages = 0
    while url:
        page = api.get(url).json()
        pages += 1
        assert page["@odata.context"].endswith(f"/attendanceReports('{report_id}')/attendanceRecords")
        names += [row["identity"]["displayName"] for row in page["value"]]
        url = page.get("@odata.nextLink")
        assert url is None or url.startswith(sim.graph_base_url)
    assert pages == 3 and names == ["Ann", "Bo", "Cy", "Di", "Ed"]


def test_one_record_per_person_with_each_interval(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    state = sim.state
    state.join(meeting["id"], upn=COHOST.email)
    state.advance(600)
    state.leave(meeting["id"], upn=COHOST.email)
    state.advance(120)
    state.join(meeting["id"], upn=COHOST.email)
    state.join(meeting["id"], "Guest Ann", email="")
    state.advance(300)
    state.end_meeting(meeting["id"])
    base = f"/users/{HOST.email}/onlineMeetings/{meeting['id']}/attendanceReports"
    [report] = api.get(base).json()["value"]
    assert report["attendanceRecords"] == [] and report["totalParticipantCount"] == 2
    records = api.get(f"{base}/{report['id']}/attendanceRecords").json()["value"]
    cole, guest = records
    assert set(fixture("attendance_records.json")["value"][0]) <= set(cole)
    assert [i["durationInSeconds"] for i in cole["attendanceIntervals"]] == [600, 300]
    assert cole["totalAttendanceInSeconds"] == 900 and cole["emailAddress"] == COHOST.email
    assert guest["emailAddress"] == "" and guest["identity"]["id"] is None and guest["identity"]["tenantId"] is None
    for interval in cole["attendanceIntervals"]:
        assert SEVEN_DIGITS.match(interval["joinDateTime"]) and SEVEN_DIGITS.match(interval["leaveDateTime"])


def test_only_the_50_most_recent_reports_are_listed(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    first = None
    for _ in range(52):
        run = sim.state.join(meeting["id"], "Ann")["report_id"]
        first = first or run
        sim.state.advance(60)
        sim.state.end_meeting(meeting["id"])
    reports = api.get(f"/users/{HOST.email}/onlineMeetings/{meeting['id']}/attendanceReports").json()["value"]
    assert len(reports) == 50 and first not in {report["id"] for report in reports}


def test_the_scenario_api_is_reachable_over_http(sim: TeamsSimulator, api: httpx2.Client) -> None:
    meeting = create(api)
    joined = httpx2.post(f"{sim.base_url}/_sim/join", json={"meeting_id": meeting["id"], "name": "Bo"})
    assert joined.status_code == 200 and joined.json()["key"] == "Bo"
    unknown = httpx2.post(f"{sim.base_url}/_sim/rm_rf", json={})
    assert unknown.status_code == 404 and "join" in unknown.json()["methods"]
    wrong = httpx2.post(f"{sim.base_url}/_sim/leave", json={"meeting_id": meeting["id"], "name": "Nobody"})
    assert wrong.status_code == 400
