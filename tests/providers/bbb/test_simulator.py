"""The simulator behaves like BBB where the adapter depends on it: checksums, idempotent create, join, end, info."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx2
import pytest
from pydantic import SecretStr

from viltbridge.providers.bbb.client import signed_url
from viltbridge.providers.bbb.settings import BbbSettings
from viltbridge.providers.bbb.simulator import BbbSimulator


def settings(sim: BbbSimulator, algorithm: str = "sha256", secret: str | None = None) -> BbbSettings:
    return BbbSettings(server_url=sim.server_url, shared_secret=SecretStr(secret or sim.config.shared_secret),
                       checksum_algorithm=algorithm)  # type: ignore[arg-type]


def call(sim: BbbSimulator, name: str, params: dict[str, str], **kwargs: str) -> dict[str, str]:
    response = httpx2.get(signed_url(settings(sim, **kwargs), name, params))
    assert response.status_code == 200
    return {child.tag: (child.text or "") for child in ET.fromstring(response.text)}


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_every_algorithm_is_accepted(sim: BbbSimulator, algorithm: str) -> None:
    assert call(sim, "create", {"name": "Class", "meetingID": "m1"}, algorithm=algorithm)["returncode"] == "SUCCESS"


def test_a_wrong_secret_is_a_checksum_error(sim: BbbSimulator) -> None:
    answer = call(sim, "create", {"name": "Class", "meetingID": "m1"}, secret="not-the-secret")
    assert (answer["returncode"], answer["messageKey"]) == ("FAILED", "checksumError")
    assert sim.state.meetings == {}


def test_a_tampered_query_is_a_checksum_error(sim: BbbSimulator) -> None:
    url = signed_url(settings(sim), "join", {"fullName": "Ann", "meetingID": "m1", "role": "VIEWER"})
    response = httpx2.get(url.replace("role=VIEWER", "role=MODERATOR"))
    assert "<messageKey>checksumError</messageKey>" in response.text


def test_an_algorithm_the_server_does_not_allow_is_refused(bbb_simulator: BbbSimulator) -> None:
    sim = bbb_simulator
    sim.reset(supported_algorithms=("sha256",))
    assert call(sim, "create", {"name": "Class", "meetingID": "m1"}, algorithm="sha1")["messageKey"] == "checksumError"
    assert call(sim, "create", {"name": "Class", "meetingID": "m1"}, algorithm="sha256")["returncode"] == "SUCCESS"


def test_create_is_idempotent(sim: BbbSimulator) -> None:
    first = call(sim, "create", {"name": "Class", "meetingID": "m1"})
    again = call(sim, "create", {"name": "Renamed", "meetingID": "m1"})
    assert again["returncode"] == "SUCCESS" and again["messageKey"] == "duplicateWarning"
    assert again["internalMeetingID"] == first["internalMeetingID"]
    assert sim.state.meetings["m1"].name == "Class"


def test_join_redirects_and_records_the_user_id(sim: BbbSimulator) -> None:
    call(sim, "create", {"name": "Class", "meetingID": "m1"})
    url = signed_url(settings(sim), "join", {"fullName": "Ann Lee", "meetingID": "m1", "role": "VIEWER",
                                            "userID": "u-ann"})
    response = httpx2.get(url)
    assert response.status_code == 302 and "/html5client/join" in response.headers["location"]
    info = call(sim, "getMeetingInfo", {"meetingID": "m1"})
    assert info["running"] == "true" and info["participantCount"] == "1"
    assert sim.state.meetings["m1"].attendees["u-ann"].full_name == "Ann Lee"


@pytest.mark.parametrize(("version", "role", "password", "expected"), [
    ((2, 7), "MODERATOR", "att-pw", "MODERATOR"),  # a valid role overrides the password (2.4 and later)
    ((2, 7), "chair", "mod-pw", "MODERATOR"),  # an invalid role: the password decides
    ((2, 3), "MODERATOR", "att-pw", "VIEWER"),  # before 2.4 there is no role: the password decides
    ((2, 3), "MODERATOR", "", None),  # ... and without one nobody gets in
])
def test_join_decides_the_role_as_the_join_table_says(bbb_simulator: BbbSimulator, version: tuple[int, int],
                                                      role: str, password: str, expected: str | None) -> None:
    sim = bbb_simulator
    sim.reset(version=version)
    created = call(sim, "create", {"name": "Class", "meetingID": "m1", "attendeePW": "att-pw",
                                   "moderatorPW": "mod-pw"})
    assert (created["attendeePW"], created["moderatorPW"]) == ("att-pw", "mod-pw")
    answer = call(sim, "join", {"fullName": "Ann", "meetingID": "m1", "role": role, "password": password,
                                "userID": "u-ann", "redirect": "false"})
    if expected is None:
        assert (answer["returncode"], answer["messageKey"]) == ("FAILED", "invalidPassword")
    else:
        assert answer["returncode"] == "SUCCESS" and sim.state.meetings["m1"].attendees["u-ann"].role == expected


def test_join_to_an_unknown_meeting_fails(sim: BbbSimulator) -> None:
    answer = call(sim, "join", {"fullName": "Ann", "meetingID": "nope", "role": "VIEWER", "redirect": "false"})
    assert (answer["returncode"], answer["messageKey"]) == ("FAILED", "invalidMeetingIdentifier")


def test_an_ended_meeting_is_not_found(sim: BbbSimulator) -> None:
    call(sim, "create", {"name": "Class", "meetingID": "m1"})
    assert call(sim, "end", {"meetingID": "m1"})["messageKey"] == "sentEndMeetingRequest"
    assert call(sim, "getMeetingInfo", {"meetingID": "m1"})["messageKey"] == "notFound"
    assert call(sim, "end", {"meetingID": "m1"})["messageKey"] == "notFound"


def test_the_scenario_api_scripts_joins_and_leaves(sim: BbbSimulator) -> None:
    call(sim, "create", {"name": "Class", "meetingID": "m1"})
    joined = httpx2.post(f"{sim.base_url}/_sim/join", json={"meeting_id": "m1", "user_id": "u1", "full_name": "A"})
    assert joined.status_code == 200
    httpx2.post(f"{sim.base_url}/_sim/advance", json={"seconds": 600})
    left = httpx2.post(f"{sim.base_url}/_sim/leave", json={"meeting_id": "m1", "user_id": "u1"})
    assert left.json() == {"user_id": "u1", "present": False}
    assert httpx2.post(f"{sim.base_url}/_sim/nope").status_code == 404
