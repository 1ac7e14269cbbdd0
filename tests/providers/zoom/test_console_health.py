"""The console's provider health for a Zoom connection: the token, the last call (and what failed), the circuit
breaker and the calls counted against each Zoom quota today, as this server has seen them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.conftest import Db, Lms
from tests.web.test_console_access import make_user, sign_in
from viltbridge.core.permissions import ConsoleRole
from viltbridge.providers.zoom.simulator import ZoomSimulator


def health(client: TestClient) -> str:
    page = client.get("/console/connections/acme-zoom")
    assert page.status_code == 200
    found = re.search(r'<dl class="facts" id="provider-health">(.*?)</dl>', page.text, flags=re.S)
    assert found
    return " ".join(found.group(1).split())


def test_the_connection_page_says_what_the_server_has_seen_of_zoom(client: TestClient, db: Db, zoom_lms: Lms,
                                                                   zoom_simulator: ZoomSimulator) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    sign_in(client, "ada@example.com")
    assert "no call made since this server started" in health(client)
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    seen = health(client)
    assert "<dt>token</dt><dd><span class=\"ok\">ok</span> renewed at" in seen
    assert "<dt>last call</dt><dd><span class=\"ok\">ok</span> succeeded at" in seen
    assert "<dt>circuit breaker</dt><dd><span class=\"ok\">ok</span> closed" in seen
    assert "<dt>calls today</dt><dd>1 against Zoom&#39;s Light API rate limit" in seen
    zoom_simulator.state.inject_fault(404, count=1, path="/users/nobody@example.com")
    assert zoom_lms.add_instructor("nobody@example.com").status_code == 400
    failed = health(client)
    assert "<dt>last call</dt><dd><span class=\"off\">problem</span> failed at" in failed
    assert "nobody@example.com" in failed
