"""The database out of reach (restarting, failing over) is a pause the LMS and browsers can act on: a 503 in the
contract's envelope (or, on a launch link, a page) with Retry-After, as /openapi.json documents; never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from tests.conftest import b64, session_body
from tests.processes import documented_statuses, free_port
from viltbridge.config import Settings
from viltbridge.core.launch_tokens import LaunchClaims, sign_launch
from viltbridge.web.app import create_app

pytestmark = pytest.mark.pure


@pytest.fixture
def nowhere(tmp_path: Path) -> TestClient:
    """The app on a PostgreSQL server that refuses connections (nothing listens on the port)."""
    settings = Settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
                        secret_key=Fernet.generate_key().decode(), key_file=tmp_path / "key",
                        queue_url=f"sqlite:///{tmp_path / 'queue.db'}", _env_file=None)  # type: ignore[call-arg]
    return TestClient(create_app(settings), follow_redirects=False)


def test_lms_calls_get_a_documented_503_with_retry_after(nowhere: TestClient) -> None:
    app: Any = nowhere.app
    schema = app.openapi()  # /openapi.json needs credentials, which need the database
    auth = ("acme", "secret")
    calls = [("POST", "/session", "/session", session_body("s-1")),
             ("GET", f"/session/s-1/user/{b64('kim@example.com')}/url",
              "/session/{SessionId}/user/{base64EncodedEmail}/url", None),
             ("GET", "/session/s-1/attendees", "/session/{SessionId}/attendees", None)]
    with nowhere:
        for method, path, documented_as, body in calls:
            answer = nowhere.request(method, path, json=body, auth=auth, headers={"correlationId": "c-7"})
            assert answer.status_code == 503, answer.text
            assert 503 in documented_statuses(schema, method, documented_as)
            assert answer.headers["retry-after"] == "5"
            envelope = answer.json()
            assert envelope["error"]["code"] == 503 and envelope["correlationId"] == "c-7"
            assert "database is not reachable" in envelope["error"]["message"]
            assert "c-7" in envelope["error"]["message"]  # the reference an administrator can look up


def test_a_launch_link_shows_a_page_that_says_to_try_again(nowhere: TestClient) -> None:
    with nowhere:
        ctx = nowhere.app.state.ctx  # type: ignore[attr-defined]
        claims = LaunchClaims(connection_id=1, session_id=1, email="kim@example.com", issued_at=datetime.now(UTC))
        answer = nowhere.get(f"/l/{sign_launch(claims, ctx.launch.keys[0])}")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"].startswith("text/html")
    assert "Please try again in a moment" in answer.text and "database is not reachable" in answer.text
