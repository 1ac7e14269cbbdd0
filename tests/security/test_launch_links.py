"""Launch links (`/l/<token>`) through HTTP: scoped to one person and one part (a link for learner A and part 1
cannot be turned into one for B or part 2), unguessable, and valid for `VILTBRIDGE_LAUNCH_LINK_MAX_AGE_MINUTES`
after the LMS asked for it, not a second more."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Lms, session_body

START = NOW + timedelta(minutes=10)
ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def two_parts(lms: Lms) -> Lms:
    for part in ("part-1", "part-2"):
        assert lms.create_session(session_body(part, start=START, LoId="lo-1")).status_code == 200
    return lms


def link(lms: Lms, part: str, email: str) -> str:
    answer = lms.launch(part, email)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["joinUrl"]).rsplit("/l/", 1)[1]


def follow(client: TestClient, token: str) -> Any:
    return client.get(f"/l/{token}")


def payload(token: str) -> list[Any]:
    body = token.split(".", 1)[0]
    return list(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def with_payload(token: str, claims: list[Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{body}.{token.split('.', 1)[1]}"


def test_a_link_cannot_be_turned_into_another_persons_or_another_parts(two_parts: Lms, clock: Any) -> None:
    clock.set(START)
    client = two_parts.client
    alice_part1 = link(two_parts, "part-1", ALICE)
    bob_part2 = link(two_parts, "part-2", BOB)
    assert follow(client, alice_part1).status_code == 302
    claims = payload(alice_part1)
    version, connection_id, session_row, email, issued = claims
    assert email == ALICE
    other_part = payload(bob_part2)[2]
    forgeries = {
        "another person": with_payload(alice_part1, [version, connection_id, session_row, BOB, issued]),
        "another part": with_payload(alice_part1, [version, connection_id, other_part, ALICE, issued]),
        "another connection": with_payload(alice_part1, [version, connection_id + 1, session_row, ALICE, issued]),
        "issued later": with_payload(alice_part1, [version, connection_id, session_row, ALICE, issued + 3600]),
        "B's signature on A's claims": f"{alice_part1.split('.')[0]}.{bob_part2.split('.')[1]}",
    }
    for what, forged in forgeries.items():
        refused = follow(client, forged)
        assert refused.status_code == 403 and "not valid" in refused.text, what


def test_links_are_unguessable(two_parts: Lms, clock: Any) -> None:
    clock.set(START)
    tokens = {link(two_parts, part, email) for part in ("part-1", "part-2") for email in (ALICE, BOB)}
    clock.set(START + timedelta(seconds=1))
    tokens.add(link(two_parts, "part-1", ALICE))  # the same person again, a moment later
    assert len(tokens) == 5
    signatures = {token.split(".", 1)[1] for token in tokens}
    assert len(signatures) == 5
    for signature in signatures:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        assert len(raw) * 8 >= 256  # a full HMAC-SHA256: guessing one is 1 in 2^256 per try


def test_a_link_lives_max_age_minutes_after_it_was_handed_out(two_parts: Lms, clock: Any, settings: Any) -> None:
    clock.set(START)
    token = link(two_parts, "part-1", ALICE)
    max_age = timedelta(minutes=settings.launch_link_max_age_minutes)
    clock.set(START + max_age)
    assert follow(two_parts.client, token).status_code == 302
    clock.set(START + max_age + timedelta(seconds=1))
    expired = follow(two_parts.client, token)
    assert expired.status_code == 403 and "expired" in expired.text
    assert follow(two_parts.client, link(two_parts, "part-1", ALICE)).status_code == 302  # a fresh one works
