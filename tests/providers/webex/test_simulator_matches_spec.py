"""The simulator against the official Webex Meetings OpenAPI document (a gzipped copy in `spec/`): every API route
exists there with the same method, and every response of a scripted run has a status the spec documents for that
operation and a body that validates against the spec's schema for that status, with no field the schema does not
declare. Error bodies have Webex's shape (the spec documents error statuses without a body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import jsonschema_rs
import pytest
from starlette.routing import Route

from tests.providers.openapi import load_spec, operation, resolve
from tests.providers.webex.conftest import COHOST, HOST, T0, get_token
from viltbridge.providers.webex.simulator import API_ENDPOINTS, WebexSimulator, build_app
from viltbridge.providers.webex.simulator.state import WebexState

pytestmark = pytest.mark.pure

# The official document (sha256 2288f9bb…560c6 of the uncompressed JSON, as in /work/shared/specs).
SPEC_FILE = Path(__file__).parent / "spec" / "webex-meetings-openapi.json.gz"
NON_API_ROUTES = {"/v1/access_token", "/webex/{kind}/{token}", "/_sim/{method}"}
# docs/providers.md §3.6 [H]: without `joinDirectly: false` Webex redirects to the join link; the spec lists 200 only.
UNDOCUMENTED_BUT_REAL = {("POST", "/meetings/join", 302)}






@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec(SPEC_FILE)


def _declared(schema: dict[str, Any]) -> dict[str, Any]:
    properties = dict(schema.get("properties", {}))
    for combinator in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(combinator, []):
            properties.update(_declared(part))
    return properties


def _undeclared(schema: dict[str, Any], value: Any, where: str = "$") -> Iterator[str]:
    """Fields of `value` that `schema` does not declare, at any depth."""
    if isinstance(value, dict):
        declared = _declared(schema)
        for key, item in value.items():
            if key not in declared:
                yield f"{where}.{key}"
            else:
                yield from _undeclared(declared[key], item, f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            yield from _undeclared(schema["items"], item, f"{where}[{n}]")




def _success_schema(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    content = operation(spec, method, path)["responses"][str(status)]["content"]
    return dict(resolve(next(iter(content.values()))["schema"], spec["components"]["schemas"]))


# -- Routes -----------------------------------------------------------------------------------------------------


def test_every_api_route_exists_in_the_spec_with_the_same_method(spec: dict[str, Any]) -> None:
    served: set[tuple[str, str]] = set()
    for route in build_app(WebexState()).routes:
        assert isinstance(route, Route)
        if route.path in NON_API_ROUTES:
            continue
        assert route.path.startswith("/v1/"), f"unexpected route {route.path}"
        served |= {(method, route.path.removeprefix("/v1")) for method in (route.methods or set()) - {"HEAD"}}
    assert served == {(e.method, e.path) for e in API_ENDPOINTS}
    for method, path in served:
        assert method.lower() in spec["paths"].get(path, {}), f"the spec has no {method} {path}"


# -- A scripted run -----------------------------------------------------------------------------------------------


def _script(sim: WebexSimulator) -> None:
    """Every operation, with its success and its usual failures."""
    state = sim.state
    for person in (HOST, COHOST):
        state.seed_person(person.email, first_name=person.first_name, last_name=person.last_name)
    state.seed_person("guest.host@example.com", licensed=False)
    start = T0 + timedelta(hours=1)
    with httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": f"Bearer {get_token(sim)}"}) as api:
        api.get("/people", params={"email": HOST.email})
        api.get("/people", params={"email": "nobody@example.com"})
        api.get("/people")
        body = {"title": "Safety basics", "agenda": "Onboarding", "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(), "timezone": "America/New_York",
                "hostEmail": HOST.email, "sendEmail": False, "integrationTags": ["viltbridge:1:sess-1"],
                "invitees": [{"email": COHOST.email, "displayName": "Cole Helper", "coHost": True}]}
        meeting = api.post("/meetings", json=body).json()
        api.post("/meetings", json={**body, "hostEmail": "guest.host@example.com"})
        api.post("/meetings", json={**body, "hostEmail": "ghost@example.com"})
        api.post("/meetings", json={**body, "title": "x" * 129})
        api.post("/meetings", json={**body, "end": (start + timedelta(minutes=5)).isoformat()})
        api.post("/meetings", content=b"{not json")
        mid = meeting["id"]
        api.get(f"/meetings/{mid}")
        api.get("/meetings/0123456789abcdef0123456789abcdef")
        api.get("/meetings", params={"hostEmail": HOST.email})
        api.get("/meetings", params={"meetingType": "someday"})
        api.get("/meetings", params={"integrationTag": "viltbridge:1:sess-1", "hostEmail": HOST.email})
        api.get("/meetings", params={"from": (T0 + timedelta(days=9)).isoformat()})
        api.get("/meetings", params={"from": T0.isoformat(), "to": (T0 - timedelta(days=1)).isoformat()})
        api.post("/meetings", json={**body, "integrationTags": ["x" * 65]})
        api.patch(f"/meetings/{mid}", json={"title": "Safety basics (moved)", "start": (start + timedelta(
            hours=1)).isoformat(), "end": (start + timedelta(hours=2)).isoformat(), "hostEmail": HOST.email})
        api.patch(f"/meetings/{mid}", json={"joinBeforeHostMinutes": 7})
        api.post("/meetingInvitees", json={"meetingId": mid, "email": "learner@example.com", "coHost": False})
        api.post("/meetingInvitees", json={"meetingId": mid, "email": "learner@example.com", "coHost": False})
        for who in (HOST.email, COHOST.email, "learner@example.com"):
            api.post("/meetings/join", json={"meetingId": mid, "email": who, "displayName": who,
                                             "joinDirectly": False, "expirationMinutes": 60})
        api.post("/meetings/join", json={"meetingId": mid, "email": "learner@example.com"})
        api.post("/meetings/join", json={"meetingId": mid, "meetingNumber": meeting["meetingNumber"]})
        api.post("/meetings/join", json={"meetingId": mid, "joinDirectly": False, "expirationMinutes": 90})

        api.get("/meetingParticipants", params={"meetingId": mid})  # never held: 404
        state.clock.set(start)
        for n in range(5):
            state.join(mid, f"Learner {n}", f"l{n}@example.com", at=start + timedelta(minutes=n))
        state.leave(mid, "l1@example.com", at=start + timedelta(minutes=20))
        state.join(mid, "Learner 1", "l1@example.com", at=start + timedelta(minutes=25), device_type="webex_app")
        state.join(mid, "Dee Guest", at=start + timedelta(minutes=30))
        api.get("/meetingParticipants", params={"meetingId": mid, "max": 3})  # live roster
        api.delete(f"/meetings/{state.instance(mid).id}")
        state.end_meeting(mid, at=start + timedelta(minutes=55))
        state.clock.set(start + timedelta(minutes=75))
        instances = api.get("/meetings", params={"meetingType": "meeting", "meetingSeriesId": mid}).json()
        instance_id = instances["items"][0]["id"]
        api.get(f"/meetings/{instance_id}")
        api.patch(f"/meetings/{instance_id}", json={"title": "x"})
        first = api.get("/meetingParticipants", params={"meetingId": instance_id, "max": 4})
        next_url = first.headers["link"].split(">")[0].lstrip("<")
        api.get(next_url)
        api.get("/meetingParticipants", params={"meetingId": instance_id, "cursor": "@@"})
        api.get("/meetingParticipants")

        state.inject_fault(429, path="/meetings/", retry_after="2")
        api.get(f"/meetings/{mid}")
        api.delete(f"/meetings/{mid}")
        api.delete(f"/meetings/{mid}")
    with httpx2.Client(base_url=sim.api_base_url, headers={"Authorization": "Bearer forged"}) as stranger:
        stranger.get(f"/meetings/{mid}")


@pytest.fixture(scope="module")
def exchanges(webex_simulator: WebexSimulator) -> list[dict[str, Any]]:
    webex_simulator.reset(start=T0, record_exchanges=True)
    _script(webex_simulator)
    return list(webex_simulator.state.exchanges)


def test_the_script_covers_every_operation(exchanges: list[dict[str, Any]]) -> None:
    succeeded = {(x["method"], x["route"]) for x in exchanges if 200 <= x["status"] < 300}
    assert succeeded == {(e.method, e.path) for e in API_ENDPOINTS}
    assert {200, 204, 302, 400, 401, 404, 409, 429} <= {x["status"] for x in exchanges}


def test_every_status_is_documented_for_its_operation(spec: dict[str, Any],
                                                      exchanges: list[dict[str, Any]]) -> None:
    for x in exchanges:
        if (x["method"], x["route"], x["status"]) in UNDOCUMENTED_BUT_REAL:
            continue
        documented = set(operation(spec, x["method"], x["route"])["responses"])
        assert str(x["status"]) in documented, f"{x['method']} {x['path']} -> {x['status']}: {sorted(documented)}"


def test_every_success_body_validates_against_the_spec(spec: dict[str, Any],
                                                       exchanges: list[dict[str, Any]]) -> None:
    checked = 0
    for x in exchanges:
        status, where = x["status"], f"{x['method']} {x['path']} -> {x['status']}"
        if not 200 <= status < 300:
            continue
        if status == 204:
            assert x["body"] is None, where
            continue
        schema = _success_schema(spec, x["method"], x["route"], status)
        extra = list(_undeclared(schema, x["body"]))
        assert not extra, f"{where}: not in the spec's schema: {extra}"
        validator = jsonschema_rs.Draft4Validator(schema)
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(x["body"])]
        assert not errors, f"{where}: {errors}"
        checked += 1
    assert checked >= 15


def test_every_error_has_webexs_error_body(exchanges: list[dict[str, Any]]) -> None:
    for x in exchanges:
        if x["status"] < 400:
            continue
        where = f"{x['method']} {x['path']} -> {x['status']}"
        body = x["body"]
        assert isinstance(body, dict) and set(body) == {"message", "errors", "trackingId"}, where
        assert body["message"] and all(set(e) == {"description"} for e in body["errors"]), where
        assert x["headers"]["trackingid"] == body["trackingId"], where
        if x["status"] == 429:
            assert x["headers"]["retry-after"] == "2", where


def test_the_redirect_points_at_the_join_link(exchanges: list[dict[str, Any]]) -> None:
    redirects = [x for x in exchanges if x["status"] == 302]
    assert redirects and all("/webex/join/" in x["headers"]["location"] for x in redirects)


def test_strict_check_catches_an_undeclared_field(spec: dict[str, Any]) -> None:
    """The checker itself: a misspelt field is reported, a declared one is not."""
    schema = _success_schema(spec, "GET", "/meetingParticipants", 200)
    good = {"items": [{"email": "a@b.c", "devices": [{"durationSecond": 5}]}]}
    bad = {"items": [{"email": "a@b.c", "devices": [{"duration": 5}]}]}
    assert list(_undeclared(schema, good)) == []
    assert list(_undeclared(schema, bad)) == ["$.items[0].devices[0].duration"]
