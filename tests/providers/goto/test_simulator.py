"""The GoTo Training simulator against GoTo's documented behaviour: answers shaped like the fixtures (taken from
GoTo's API reference), 201 with a bare JSON string on create, 409 for a registered email, reports that appear
after a delay with one entry per join and no-shows last, the token endpoint's Basic auth and rotation, the
10-a-second limit answering 429 without Retry-After, both of GoTo's error bodies, and the scenario API over HTTP."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx2
import pytest

from tests.providers.fixtures import fixture_json
from tests.providers.goto.conftest import COHOST, COHOST_KEY, T0
from viltbridge.providers.goto.simulator import GotoSimulator

pytestmark = pytest.mark.pure

START = T0 + timedelta(minutes=5)  # the raw API client's token lives 60 minutes of simulator time


def fixture(name: str) -> Any:
    return fixture_json("goto", name)


def _trainings(sim: GotoSimulator) -> str:
    return f"/organizers/{sim.config.organizer_key}/trainings"


def _create(api: httpx2.Client, sim: GotoSimulator, **changes: Any) -> str:
    body = {"name": "Class", "description": "Desc", "timeZone": "Europe/Paris",
            "times": [{"startDate": START.isoformat(), "endDate": (START + timedelta(hours=1)).isoformat()}],
            **changes}
    response = api.post(_trainings(sim), json=body)
    assert response.status_code == 201, response.text
    key = response.json()
    assert isinstance(key, str) and key.isdigit()  # a bare JSON string
    return key


def _keys(value: Any) -> Any:
    """The shape of a JSON value: keys of objects (recursively), first item of lists."""
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(value[0])] if value else []
    return type(value).__name__


def test_answers_have_the_shapes_of_gotos_payloads(sim: GotoSimulator, api: httpx2.Client) -> None:
    request = fixture("create_training_request.json")
    request["times"] = [{"startDate": START.isoformat(), "endDate": (START + timedelta(hours=1)).isoformat()}]
    created = api.post(_trainings(sim), json=request)
    assert created.status_code == 201
    key = created.json()
    assert type(key) is type(fixture("create_training_response.json"))
    training = api.get(f"{_trainings(sim)}/{key}").json()
    assert _keys(training) == _keys(fixture("training.json"))
    assert [o["email"] for o in training["organizers"]] == ["tess@example.com", COHOST.email]
    registrant = api.post(f"{_trainings(sim)}/{key}/registrants",
                          json={"email": "jane.doe@example.com", "givenName": "Jane", "surname": "Doe"})
    assert registrant.status_code == 201
    assert _keys(registrant.json()) == _keys(fixture("registrant_created.json"))
    assert _keys(api.get(f"{_trainings(sim)}/{key}/registrants").json()) == _keys(fixture("registrants.json"))

    sim.state.join(key, "jane.doe@example.com", at=START)
    sim.state.leave(key, "jane.doe@example.com", at=START + timedelta(minutes=20))
    sim.state.end_session(key, at=START + timedelta(minutes=30))
    sim.state.set_clock(START + timedelta(minutes=45))
    sessions = api.get(f"/reports/organizers/{sim.config.organizer_key}/trainings/{key}").json()
    assert _keys(sessions) == _keys(fixture("report_sessions.json"))
    attendees = api.get(f"/reports/organizers/{sim.config.organizer_key}/sessions/"
                        f"{sessions[0]['sessionKey']}/attendees").json()
    assert _keys(attendees) == _keys(fixture("session_attendees.json"))
    assert api.get(f"{_trainings(sim)}/999").json().keys() == fixture("error_not_found.json").keys()


def test_edits_answer_204_and_times_say_who_was_notified(sim: GotoSimulator, api: httpx2.Client) -> None:
    key = _create(api, sim)
    api.post(f"{_trainings(sim)}/{key}/registrants", json={"email": "a@example.com", "givenName": "A",
                                                            "surname": "B"})
    renamed = api.put(f"{_trainings(sim)}/{key}/nameDescription", json={"name": "New", "description": "D"})
    assert renamed.status_code == 204 and not renamed.content
    later = START + timedelta(days=1)
    times = {"timeZone": "UTC", "times": [{"startDate": later.isoformat(),
                                           "endDate": (later + timedelta(hours=1)).isoformat()}]}
    assert api.put(f"{_trainings(sim)}/{key}/times", json=times).json() == {"notifiedRegistrants": 1,
                                                                            "notifiedTrainers": 1}
    quiet = api.put(f"{_trainings(sim)}/{key}/times", json={**times, "notifyRegistrants": False,
                                                             "notifyTrainers": False})
    assert quiet.json() == {"notifiedRegistrants": 0, "notifiedTrainers": 0}
    training = api.get(f"{_trainings(sim)}/{key}").json()
    assert training["name"] == "New" and training["times"][0]["startDate"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.delete(f"{_trainings(sim)}/{key}").status_code == 204
    assert api.delete(f"{_trainings(sim)}/{key}").status_code == 404


def test_invalid_trainings_are_refused_with_gotos_error_body(sim: GotoSimulator, api: httpx2.Client) -> None:
    past = T0 - timedelta(days=1)
    refused = api.post(_trainings(sim), json={"name": "x", "timeZone": "UTC", "times": [
        {"startDate": past.isoformat(), "endDate": (past + timedelta(hours=1)).isoformat()}]})
    assert refused.status_code == 400 and refused.json()["int_err_code"] == "InvalidRequest"
    assert api.post(_trainings(sim), json={"name": "x" * 101, "timeZone": "UTC", "times": []}).status_code == 400
    bad_zone = api.post(_trainings(sim), json={"name": "x", "timeZone": "Mars/Olympus", "times": [
        {"startDate": START.isoformat(), "endDate": (START + timedelta(hours=1)).isoformat()}]})
    assert bad_zone.json()["int_err_code"] == "InvalidTimeZone"
    other = api.get(f"/organizers/{COHOST_KEY}/trainings")  # the token is the main organizer's
    assert other.status_code == 403


def test_a_duplicate_registration_is_a_409(sim: GotoSimulator, api: httpx2.Client) -> None:
    key = _create(api, sim)
    body = {"email": "lee@example.com", "givenName": "Lee", "surname": "Park"}
    assert api.post(f"{_trainings(sim)}/{key}/registrants", json=body).status_code == 201
    again = api.post(f"{_trainings(sim)}/{key}/registrants", json={**body, "email": "LEE@example.com"})
    assert again.status_code == 409 and again.json()["int_err_code"] == "DuplicateRegistrant"


def test_reports_appear_after_the_delay_with_periods_and_no_shows_last(sim: GotoSimulator,
                                                                      api: httpx2.Client) -> None:
    key = _create(api, sim)
    for email in ("jane@example.com", "kim@example.com"):
        api.post(f"{_trainings(sim)}/{key}/registrants", json={"email": email, "givenName": "X", "surname": "Y"})
    state = sim.state
    state.join(key, "tess@example.com", at=START)  # the organizer: not in the attendee report
    state.join(key, "jane@example.com", at=START + timedelta(minutes=1))
    state.leave(key, "jane@example.com", at=START + timedelta(minutes=21))
    state.join(key, "jane@example.com", at=START + timedelta(minutes=30))
    state.join(key, "guest@example.com", "Gus", "Guest", at=START + timedelta(minutes=5))
    state.end_session(key, at=START + timedelta(minutes=40))
    report = f"/reports/organizers/{sim.config.organizer_key}/trainings/{key}"
    state.set_clock(START + timedelta(minutes=49))
    assert api.get(report).json() == []
    state.set_clock(START + timedelta(minutes=50))
    [session] = api.get(report).json()
    assert session["duration"] == 40 and session["attendanceCount"] == 2
    rows = api.get(f"/reports/organizers/{sim.config.organizer_key}/sessions/{session['sessionKey']}/attendees"
                   ).json()
    assert [r["email"] for r in rows] == ["jane@example.com", "guest@example.com", "kim@example.com"]
    assert [t["timeInPartOfSession"] for t in rows[0]["inSessionTimes"]] == [20, 10]
    assert rows[0]["timeInSession"] == 30
    assert rows[-1] == {"givenName": "X", "surname": "Y", "email": "kim@example.com", "timeInSession": 0,
                        "inSessionTimes": []}


def _token(sim: GotoSimulator, refresh_token: str, *, secret: str | None = None) -> httpx2.Response:
    config = sim.config
    basic = base64.b64encode(f"{config.client_id}:{secret or config.client_secret}".encode()).decode()
    return httpx2.post(sim.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                       headers={"Authorization": f"Basic {basic}"})


def test_the_token_endpoint_checks_basic_auth_and_can_rotate(goto_simulator: GotoSimulator) -> None:
    sim = goto_simulator
    sim.reset(start=T0)
    answer = _token(sim, sim.config.refresh_token).json()
    # GoTo's current token answer: the organizer's email, but no organizer_key/account_key any more.
    assert answer["expires_in"] == 3600 and answer["principal"] == sim.config.organizer_email
    assert "organizer_key" not in answer and "account_key" not in answer
    assert answer.keys() == fixture("token_response.json").keys()  # no refresh_token unless rotating
    wrong = _token(sim, sim.config.refresh_token, secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert _token(sim, "unknown").json()["error"] == "invalid_grant"

    sim.reset(start=T0, rotate_refresh_tokens=True)
    first = _token(sim, sim.config.refresh_token).json()["refresh_token"]
    assert _token(sim, sim.config.refresh_token).status_code == 400  # the used one is revoked
    assert _token(sim, first).status_code == 200


def test_more_than_ten_calls_a_second_answer_429_without_retry_after(sim: GotoSimulator,
                                                                     api: httpx2.Client) -> None:
    statuses = [api.get(_trainings(sim)) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert "retry-after" not in limited[0].headers
    assert limited[0].json().keys() == fixture("error_rate_limited.json").keys()


def test_faults_and_the_scenario_api_over_http(sim: GotoSimulator, api: httpx2.Client) -> None:
    key = _create(api, sim)
    assert httpx2.post(f"{sim.base_url}/_sim/inject_fault", json={"status": 503, "path": "/trainings"}
                       ).status_code == 200
    failed = api.get(f"{_trainings(sim)}/{key}")
    assert failed.status_code == 503 and {"errorCode", "description", "incident"} <= failed.json().keys()
    assert api.get(f"{_trainings(sim)}/{key}").status_code == 200
    joined = httpx2.post(f"{sim.base_url}/_sim/join", json={"training_key": key, "email": "lee@example.com"})
    assert joined.status_code == 200 and joined.json()["as"] == "guest"
    assert httpx2.post(f"{sim.base_url}/_sim/nope", json={}).status_code == 404
    assert httpx2.post(f"{sim.base_url}/_sim/leave", json={"training_key": key,
                                                           "email": "ghost@example.com"}).status_code == 400


def test_links_lead_somewhere(sim: GotoSimulator, api: httpx2.Client) -> None:
    key = _create(api, sim)
    registrant = api.post(f"{_trainings(sim)}/{key}/registrants",
                          json={"email": "lee@example.com", "givenName": "Lee", "surname": "Park"}).json()
    assert "Joining Class as Lee Park" in httpx2.get(registrant["joinUrl"]).text
    host = api.get(f"/trainings/{key}/start").json()["hostURL"]
    assert httpx2.get(host).status_code == 200
    assert httpx2.get(f"{sim.base_url}/r/{key}").status_code == 200
    api.delete(f"{_trainings(sim)}/{key}")
    assert httpx2.get(registrant["joinUrl"]).status_code == 404
