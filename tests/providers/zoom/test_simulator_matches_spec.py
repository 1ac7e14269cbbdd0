"""The simulator against Zoom's official Meetings OpenAPI document (a gzipped copy in `spec/`): every API route
exists there with the same method, scopes and rate-limit label, and every response of a scripted run has a status
the spec documents for that operation and a body that validates against the spec's schema for that status, with no
field the schema does not declare (a few documented exceptions below).

The three Users routes are not part of the Meetings document (Zoom publishes the Users API separately); they are
checked against the shapes in docs/providers.md §1.4 instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest
from starlette.routing import Route

from tests.providers.openapi import load_spec, operation, resolve
from tests.providers.zoom.conftest import T0, TEACHER, api_client, create_meeting
from viltbridge.providers.zoom.simulator import API_ENDPOINTS, ZoomSimulator, build_app
from viltbridge.providers.zoom.simulator.state import ZoomState

pytestmark = pytest.mark.pure

# The official document (sha256 1da82ac7…71cf6 of the uncompressed JSON, as in /work/shared/specs).
SPEC_FILE = Path(__file__).parent / "spec" / "zoom-meetings-openapi.json.gz"

USERS_API = {("GET", "/users/{userId}"), ("POST", "/users"), ("PATCH", "/users/{userId}"),
             ("PUT", "/users/{userId}/status")}
NON_API_ROUTES = {"/oauth/token", "/j/{meetingId:int}", "/w/{meetingId:int}", "/s/{meetingId:int}",
                  "/meeting/register/{token}", "/_sim/{method}"}

# Fields the simulator returns although the spec's schema for that response does not declare them.
UNDECLARED_BUT_REAL = {
    # The create schema omits these; the GET schema has them and Zoom returns them on create too [providers.md M].
    ("POST", "/users/{userId}/meetings", "$.uuid"),
    ("POST", "/users/{userId}/meetings", "$.host_id"),
    ("POST", "/users/{userId}/meetings", "$.status"),
    # The GET schema omits registration_url (the create schema has it); Zoom returns it, and after a 204 PATCH
    # that turns registration on, GET is the only way to learn it.
    ("GET", "/meetings/{meetingId}", "$.registration_url"),
}

# Zoom's error docs: any call can answer 401 for a missing/expired token, though most operations do not list it.
ALWAYS_POSSIBLE = {"401"}

_USER = {"type": "object", "required": ["id", "email", "first_name", "last_name", "type", "status"], "properties": {
    "id": {"type": "string"}, "email": {"type": "string", "format": "email"}, "first_name": {"type": "string"},
    "last_name": {"type": "string"}, "type": {"type": "integer", "enum": [1, 2, 4, 99]},
    "status": {"type": "string", "enum": ["active", "inactive", "pending"]}, "pmi": {"type": "integer"},
    "timezone": {"type": "string"}, "account_id": {"type": "string"},
    "created_at": {"type": "string", "format": "date-time"}}}
USERS_SCHEMAS: dict[tuple[str, str, int], dict[str, Any]] = {
    ("GET", "/users/{userId}", 200): _USER,
    ("POST", "/users", 201): {**_USER, "required": ["id", "email", "first_name", "last_name", "type"]},
}
USERS_STATUSES = {200, 201, 204, 400, 401, 404, 409, 429}






@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec(SPEC_FILE)


def _declared(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema's properties, merged across allOf/anyOf/oneOf."""
    properties = dict(schema.get("properties", {}))
    for combinator in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(combinator, []):
            for key, sub in _declared(part).items():
                properties[key] = _merge(properties[key], sub) if key in properties else sub
    return properties


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": [left, right]}


def _items(schema: dict[str, Any]) -> dict[str, Any] | None:
    if "items" in schema:
        return dict(schema["items"])
    for combinator in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(combinator, []):
            found = _items(part)
            if found is not None:
                return found
    return None


def _formats(schema: dict[str, Any]) -> set[str]:
    found = {schema["format"]} if "format" in schema else set()
    for combinator in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(combinator, []):
            found |= _formats(part)
    return found


def _strict_problems(schema: dict[str, Any], value: Any, where: str = "$") -> Iterator[str]:
    """Fields the schema does not declare, and integers outside their int32/int64 format."""
    if isinstance(value, dict):
        declared = _declared(schema)
        for key, item in value.items():
            if key not in declared:
                yield f"{where}.{key}"
            else:
                yield from _strict_problems(declared[key], item, f"{where}.{key}")
    elif isinstance(value, list):
        item_schema = _items(schema)
        for n, item in enumerate(value):
            if item_schema is not None:
                yield from _strict_problems(item_schema, item, f"{where}[{n}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        formats = _formats(schema)
        if "int32" in formats and not -(2**31) <= value < 2**31:
            yield f"{where}: {value} is not an int32"
        if "int64" in formats and not -(2**63) <= value < 2**63:
            yield f"{where}: {value} is not an int64"




# -- Routes -----------------------------------------------------------------------------------------------------


def test_every_api_route_exists_in_the_spec_with_the_same_method(spec: dict[str, Any]) -> None:
    app = build_app(ZoomState())
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route)
        if not route.path.startswith("/v2/"):
            assert route.path in NON_API_ROUTES, f"unexpected non-API route {route.path}"
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            served.add((method, route.path.removeprefix("/v2")))
    assert served == {(e.method, e.path) for e in API_ENDPOINTS}
    for method, path in sorted(served):
        if (method, path) in USERS_API:
            # If Zoom ever folds the Users API into this document, check these routes like the others.
            assert method.lower() not in spec["paths"].get(path, {}), f"{method} {path} is in the spec now"
            continue
        assert path in spec["paths"], f"{path} is not a path of the spec"
        assert method.lower() in spec["paths"][path], f"the spec has no {method} {path}"


def test_scopes_and_rate_limit_labels_match_the_spec(spec: dict[str, Any]) -> None:
    for endpoint in API_ENDPOINTS:
        if (endpoint.method, endpoint.path) in USERS_API:
            continue
        documented = operation(spec, endpoint.method, endpoint.path)
        granted = {scope for requirement in documented["security"] for scope in requirement.get("openapi_oauth", [])}
        assert set(endpoint.scopes) <= granted, f"{endpoint.method} {endpoint.path}: {endpoint.scopes}"
        label = re.search(r"Rate Limit Label.*?`(\w+)`", documented["description"])
        assert label is not None and label.group(1).lower() == endpoint.category.lower(), endpoint.path


# -- A scripted run -----------------------------------------------------------------------------------------------


def _script(sim: ZoomSimulator) -> None:
    """Every operation, with its success and its usual failures."""
    state = sim.state
    state.seed_user(TEACHER, first_name="Tess", last_name="Teacher")
    state.seed_user("co@example.edu", first_name="Carl", last_name="Co")
    state.seed_user("basic@example.edu", type=1)
    with api_client(sim) as api:
        api.get(f"/users/{TEACHER}")
        api.get("/users/ghost@example.edu")
        new_user = {"email": "new@example.edu", "type": 2, "first_name": "New", "last_name": "Teacher"}
        api.post("/users", json={"action": "autoCreate", "user_info": new_user})
        api.post("/users", json={"action": "autoCreate", "user_info": new_user})
        api.post("/users", json={"action": "nope", "user_info": new_user})
        api.patch("/users/new@example.edu", json={"first_name": "Renamed"})
        api.patch("/users/ghost@example.edu", json={"first_name": "x"})
        api.put("/users/new@example.edu/status", json={"action": "deactivate"})
        api.put("/users/new@example.edu/status", json={"action": "activate"})
        api.put("/users/new@example.edu/status", json={"action": "suspend"})

        plain = create_meeting(api, settings={"alternative_hosts": "co@example.edu", "waiting_room": True},
                               tracking_fields=[{"field": "viltbridge_session", "value": "1:sess-1"}])
        registration = create_meeting(api, settings={"approval_type": 0}, agenda="Week 3")
        manual = create_meeting(api, settings={"approval_type": 1})
        create_meeting(api, type=8, recurrence={"type": 2, "repeat_interval": 1, "weekly_days": "2",
                                                "end_times": 4}, settings={"approval_type": 0})
        api.post("/users/basic@example.edu/meetings", json={"topic": "x"})
        api.post(f"/users/{TEACHER}/meetings", json={"topic": "x" * 201})
        api.post("/users/ghost@example.edu/meetings", json={"topic": "x"})
        api.get(f"/users/{TEACHER}/meetings", params={"page_size": 2})
        api.get(f"/users/{TEACHER}/meetings", params={"type": "upcoming"})
        api.get(f"/users/{TEACHER}/meetings", params={"type": "someday"})
        mid, rid = plain["id"], registration["id"]

        api.get(f"/meetings/{mid}")
        api.get(f"/meetings/{rid}")
        api.get("/meetings/12345678901")
        api.patch(f"/meetings/{mid}", json={"topic": "Renamed", "settings": {"approval_type": 0},
                                            "tracking_fields": [{"field": "viltbridge_session", "value": "1:s-2"}]})
        api.get(f"/meetings/{mid}")  # now with a registration_url (and the new tracking field)
        api.patch(f"/meetings/{mid}", json={"password": "far-too-long-passcode"})
        api.patch("/meetings/12345678901", json={"topic": "x"})

        added = api.post(f"/meetings/{rid}/registrants",
                         json={"email": "ann@learner.org", "first_name": "Ann", "last_name": "Learner",
                               "org": "Acme", "custom_questions": [{"title": "LMS id", "value": "42"}]}).json()
        api.post(f"/meetings/{manual['id']}/registrants", json={"email": "bo@learner.org", "first_name": "Bo"})
        api.post("/meetings/12345678901/registrants", json={"email": "x@y.org", "first_name": "X"})
        people = [{"email": f"l{n}@learner.org", "first_name": f"L{n}", "last_name": "Batch"} for n in range(5)]
        api.post(f"/meetings/{rid}/batch_registrants", json={"registrants": people, "auto_approve": True})
        api.post(f"/meetings/{rid}/batch_registrants", json={"registrants": people * 7})
        api.get(f"/meetings/{rid}/registrants", params={"page_size": 4})
        api.get(f"/meetings/{manual['id']}/registrants", params={"status": "pending"})
        api.put(f"/meetings/{manual['id']}/registrants/status",
                json={"action": "approve", "registrants": [{"email": "bo@learner.org"}]})
        api.delete(f"/meetings/{rid}/registrants/{added['registrant_id']}")
        api.delete(f"/meetings/{rid}/registrants/not-a-registrant")

        api.get(f"/report/meetings/{rid}/participants")  # not held yet: 404
        state.start_meeting(rid, at=T0)
        api.delete(f"/meetings/{rid}")  # running: 400
        state.join(rid, "Ann Learner", registrant="l0@learner.org", at=T0 + timedelta(minutes=1))
        carl = state.join(rid, "Carl Co", user="co@example.edu", at=T0 + timedelta(minutes=2))
        state.reconnect(rid, carl["participant_id"], at=T0 + timedelta(minutes=10), gap_seconds=30,
                        as_guest=True, name="Carl phone")
        state.join(rid, "Dee Guest", customer_key="lms-7", at=T0 + timedelta(minutes=3))
        state.clock.set(T0 + timedelta(minutes=50))
        api.put(f"/meetings/{rid}/status", json={"action": "end"})
        api.put(f"/meetings/{rid}/status", json={"action": "jump"})
        state.mark_report_processed(rid)
        first = api.get(f"/report/meetings/{rid}/participants",
                        params={"include_fields": "registrant_id", "page_size": 3}).json()
        api.get(f"/report/meetings/{rid}/participants",
                params={"include_fields": "registrant_id", "page_size": 3,
                        "next_page_token": first["next_page_token"]})
        api.get(f"/report/meetings/{rid}/participants", params={"next_page_token": "forged"})
        uuid = api.get(f"/past_meetings/{rid}/instances").json()["meetings"][0]["uuid"]
        api.get(f"/report/meetings/{quote(quote(uuid, safe=''), safe='')}/participants")
        api.get(f"/past_meetings/{quote(quote(uuid, safe=''), safe='')}/participants")
        api.get("/past_meetings/12345678901/instances")
        api.get("/report/meetings/12345678901/participants")
        api.delete(f"/meetings/{mid}")
        api.delete(f"/meetings/{mid}")
        api.put(f"/meetings/{mid}/status", json={"action": "recover"})

        state.inject_fault(429, count=2, path="/meetings/")
        api.get(f"/meetings/{mid}")
        api.post(f"/meetings/{rid}/registrants", json={"email": "late@learner.org", "first_name": "Late"})
        state.clock.set(T0 + timedelta(hours=2))  # the token expires
        api.get(f"/meetings/{mid}")


@pytest.fixture(scope="module")
def exchanges(_server: ZoomSimulator) -> list[dict[str, Any]]:
    _server.reset(start=T0, record_exchanges=True)
    _script(_server)
    return list(_server.state.exchanges)


def test_the_script_covers_every_operation(exchanges: list[dict[str, Any]]) -> None:
    succeeded = {(x["method"], x["route"]) for x in exchanges if 200 <= x["status"] < 300}
    assert succeeded == {(e.method, e.path) for e in API_ENDPOINTS}
    statuses = {x["status"] for x in exchanges}
    assert {200, 201, 204, 400, 401, 404, 409, 429} <= statuses


def test_every_status_is_documented_for_its_operation(spec: dict[str, Any],
                                                      exchanges: list[dict[str, Any]]) -> None:
    for x in exchanges:
        where = f"{x['method']} {x['path']} -> {x['status']}"
        if (x["method"], x["route"]) in USERS_API:
            assert x["status"] in USERS_STATUSES, where
            continue
        documented = set(operation(spec, x["method"], x["route"])["responses"]) | ALWAYS_POSSIBLE
        assert str(x["status"]) in documented, f"{where}: the spec documents {sorted(documented)}"


def test_every_success_body_validates_against_the_spec(spec: dict[str, Any],
                                                       exchanges: list[dict[str, Any]]) -> None:
    components = spec["components"]["schemas"]
    checked = 0
    for x in exchanges:
        status = x["status"]
        if not 200 <= status < 300:
            continue
        where = f"{x['method']} {x['path']} -> {status}"
        if status == 204:
            assert x["body"] is None, where
            continue
        if (x["method"], x["route"]) in USERS_API:
            schema = USERS_SCHEMAS[(x["method"], x["route"], status)]
        else:
            response = operation(spec, x["method"], x["route"])["responses"][str(status)]
            schema = resolve(response["content"]["application/json"]["schema"], components)
            extra = [path for path in _strict_problems(schema, x["body"])
                     if (x["method"], x["route"], path) not in UNDECLARED_BUT_REAL]
            assert not extra, f"{where}: not in the spec's schema: {extra}"
        validator = jsonschema_rs.Draft4Validator(schema, validate_formats=True)
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(x["body"])]
        assert not errors, f"{where}: {errors}"
        checked += 1
    assert checked >= 20


def test_every_error_has_zooms_error_body(exchanges: list[dict[str, Any]]) -> None:
    for x in exchanges:
        if x["status"] < 400:
            continue
        where = f"{x['method']} {x['path']} -> {x['status']}"
        body = x["body"]
        assert isinstance(body, dict) and set(body) <= {"code", "message", "errors"}, where
        assert isinstance(body["code"], int) and isinstance(body["message"], str) and body["message"], where
        for error in body.get("errors", []):
            assert set(error) == {"field", "message"}, where
        if x["status"] == 429:
            assert x["headers"]["x-ratelimit-category"] in ("Light", "Medium", "Heavy"), where


def test_strict_check_catches_an_undeclared_field(spec: dict[str, Any]) -> None:
    """The checker itself: a misspelt field is reported, a declared one is not."""
    response = operation(spec, "GET", "/report/meetings/{meetingId}/participants")["responses"]["200"]
    schema = resolve(response["content"]["application/json"]["schema"], spec["components"]["schemas"])
    good = {"page_size": 30, "next_page_token": "", "participants": [{"user_email": "", "duration": 5}]}
    bad = {"page_size": 30, "participants": [{"email": "", "duration": 5}]}
    assert list(_strict_problems(schema, good)) == []
    assert list(_strict_problems(schema, bad)) == ["$.participants[0].email"]
