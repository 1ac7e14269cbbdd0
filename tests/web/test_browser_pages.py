"""What a person's browser gets where the server has no page for it, and the site's icon (issue 13: a browser on
`/` or a mistyped console path got the LMS's JSON 404 telling it to check Cornerstone Edge)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}
CORNERSTONE_HINT = "Check the base URL entered in Cornerstone Edge"


@pytest.mark.parametrize("path", ["/console/nothing-here", "/consol", "/launch/abc"])
def test_a_browser_on_a_path_without_a_page_gets_a_page_pointing_to_the_console(client: TestClient,
                                                                                path: str) -> None:
    page = client.get(path, headers=BROWSER)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/console"' in page.text and f"There is no page at {path}" in page.text
    assert CORNERSTONE_HINT not in page.text


def test_a_browser_on_the_root_is_sent_to_the_console(client: TestClient) -> None:
    root = client.get("/", headers=BROWSER)
    assert root.status_code == 302 and root.headers["location"] == "/console"


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
@pytest.mark.parametrize("path", ["/", "/console/nothing-here", "/sessions"])
def test_lms_calls_keep_the_json_envelope(client: TestClient, path: str, accept: str | None) -> None:
    answer = client.get(path, headers={"Accept": accept} if accept else {})
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == 404 and CORNERSTONE_HINT in error["message"]


def test_a_contract_path_keeps_the_envelope_even_for_a_browser_like_accept(client: TestClient) -> None:
    answer = client.get("/session/s-1/user/x/url/extra", headers=BROWSER)
    assert answer.status_code == 404 and CORNERSTONE_HINT in answer.json()["error"]["message"]


def test_the_site_has_an_icon(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/")
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header: reserved 0, type 1 (icon)
    svg = client.get("/console/static/favicon.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    sign_in_page = client.get("/console/login").text
    assert 'href="/favicon.ico"' in sign_in_page and 'href="/console/static/favicon.svg"' in sign_in_page
