"""No endpoint answers without authentication except a reviewed list, each entry saying how it authenticates instead.

Every route of the application (included routers and mounts walked, every method) is called anonymously with
plausible path parameters: the LMS contract and the API docs must answer 401, the console must send the browser to
its sign-in page. A new route fails this test until it is protected or added to PUBLIC with its reason.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.conftest import Db, b64

# (method, path template) -> (how it authenticates instead, statuses an anonymous call with made-up values gets)
PUBLIC: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("GET", "/healthz"): ("nothing to protect: says whether the database answers, and the version", {200}),
    ("GET", "/l/{token}"): ("the launch token in the URL: HMAC-signed for one person and one part, expiring", {403}),
    ("POST", "/oauth/token"): ("it is the sign-in: checks (and throttles) the client credentials it is sent", {400}),
    ("POST", "/webhooks/{connection}"): ("each provider's signature over the body, checked per connection", {403}),
    ("GET", "/console/login"): ("the sign-in form", {200}),
    ("POST", "/console/login"): ("it is the sign-in (throttled; its own double-submit CSRF token)", {400, 403}),
    ("GET", "/console/static"): ("stylesheet and script files, the same for everyone", {200}),
    ("GET", "/favicon.ico"): ("the site's icon, the same for everyone", {200}),
    ("GET", "/console/ics/{user_id}/{token}.ics"): ("the feed token in the URL: an HMAC of the user and their "
                                                    "session version (a password change revokes it)", {404}),
}

SAMPLE_VALUES = {"base64EncodedEmail": b64("kim@example.com"), "fmt": "csv", "user_id": "1", "job_id": "1",
                 "token": "WzEsMSwxXQ.forged"}
STATIC_FILE = "console.css"


def all_routes(app: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            found.append(("GET", context.path or route.path))
            continue
        for method in sorted(getattr(context, "methods", None) or getattr(route, "methods", None) or ()):
            found.append((method, str(context.path)))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE_VALUES.get(m.group(1), "acme"), path)


def test_the_public_list_names_only_routes_that_exist(client: TestClient) -> None:
    assert set(PUBLIC) <= set(all_routes(client.app))


def test_every_route_refuses_anonymous_callers_unless_listed_public(client: TestClient, db: Db) -> None:
    db.create_connection("acme")  # path parameters that name something real
    unexpected: list[str] = []
    routes = all_routes(client.app)
    assert len(routes) > 40  # the walk reaches into included routers
    for method, path in routes:
        url = concrete(path) + (f"/{STATIC_FILE}" if path == "/console/static" else "")
        answer = client.request(method, url)
        if (method, path) in PUBLIC:
            expected = PUBLIC[(method, path)][1]
            if answer.status_code not in expected:
                unexpected.append(f"public {method} {path}: {answer.status_code}, expected {sorted(expected)}")
            continue
        if path.startswith("/console"):
            refused = answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        else:
            refused = answer.status_code == 401 and "WWW-Authenticate" in answer.headers
        if not refused:
            unexpected.append(f"{method} {path}: {answer.status_code} {answer.text[:120]}")
    assert not unexpected, "answered without authentication:\n" + "\n".join(unexpected)


def test_the_api_docs_are_served_to_the_lms_and_to_signed_in_console_users(client: TestClient, db: Db) -> None:
    acme = db.create_connection("acme")
    assert client.get("/openapi.json").status_code == 401
    schema = client.get("/openapi.json", auth=(acme["username"], acme["password"]))
    assert schema.status_code == 200 and "/session/{SessionId}/attendees" in schema.json()["paths"]
    docs = client.get("/docs", auth=(acme["username"], acme["password"]))
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert client.get("/console/api/openapi.json").headers["location"].startswith("/console/login")
