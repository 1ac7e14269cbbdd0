"""The Jitsi simulator checks tokens as the service does (and says why it refuses), runs rooms, and posts signed
webhooks with retries, duplicates and out-of-order delivery on request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.jitsi.conftest import T0
from viltbridge.providers.jitsi import webhooks
from viltbridge.providers.jitsi.simulator import JitsiSimulator
from viltbridge.providers.jitsi.simulator.state import SIM_APP_SECRET

pytestmark = pytest.mark.pure

ROOM = "forklift-safety-0123456789abcdef0123"


def token(sim: JitsiSimulator, *, key: Any = None, kid: str | None = None, alg: str = "RS256",
          **changes: Any) -> str:
    config = sim.config
    claims: dict[str, Any] = {"aud": "jitsi", "iss": "chat", "sub": config.app_id, "room": ROOM,
                              "nbf": int((T0 - timedelta(minutes=5)).timestamp()),
                              "exp": int((T0 + timedelta(hours=1)).timestamp()),
                              "context": {"user": {"id": "vb-1", "name": "Ann", "email": "ann@example.com",
                                                   "moderator": "false"}}}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    signing_key = key if key is not None else config.private_key_pem
    return jwt.encode(claims, signing_key, algorithm=alg,
                      headers={"kid": kid if kid is not None else f"{config.app_id}/{config.key_id}"})


def visit(sim: JitsiSimulator, jwt_value: str, room: str = ROOM, app_id: str | None = None) -> httpx2.Response:
    return httpx2.get(f"{sim.base_url}/{app_id or sim.config.app_id}/{room}", params={"jwt": jwt_value})


def test_a_good_token_lets_its_holder_in(sim: JitsiSimulator) -> None:
    answer = visit(sim, token(sim))
    assert answer.status_code == 200
    [ann] = sim.state.present(ROOM)
    assert (ann["id"], ann["email"], ann["moderator"]) == ("vb-1", "ann@example.com", False)


def test_a_wildcard_room_token_opens_any_room(sim: JitsiSimulator) -> None:
    assert visit(sim, token(sim, room="*"), room="another-room").status_code == 200


OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(("changes", "status", "reason"), [
    ({"key": OTHER_KEY}, 401, "bad signature"),
    ({"kid": "vpaas-magic-cookie-0123456789abcdef0123456789abcdef/unknown"}, 401, "unknown kid"),
    ({"kid": "sim-key-1"}, 401, "unknown kid"),
    ({"alg": "HS256", "key": SIM_APP_SECRET}, 401, "RS256 only"),
    ({"aud": "someone-else"}, 401, "wrong aud"),
    ({"iss": "me"}, 401, "wrong iss"),
    ({"sub": "vpaas-magic-cookie-ffffffffffffffffffffffffffffffff"}, 403, "wrong sub"),
    ({"room": "another-room"}, 403, "not"),
    ({"exp": int((T0 - timedelta(seconds=1)).timestamp())}, 401, "expired"),
    ({"nbf": int((T0 + timedelta(minutes=1)).timestamp())}, 401, "not valid yet"),
    ({"room": None}, 401, "room"),
])
def test_bad_tokens_are_refused_with_the_reason(sim: JitsiSimulator, changes: dict[str, Any], status: int,
                                                 reason: str) -> None:
    answer = visit(sim, token(sim, **changes))
    assert answer.status_code == status and reason in answer.text
    assert sim.state.history == [] and sim.state.refusals[-1]["status"] == status


def test_no_token_or_garbage_or_another_app_is_refused(sim: JitsiSimulator) -> None:
    assert httpx2.get(f"{sim.base_url}/{sim.config.app_id}/{ROOM}").status_code == 401
    assert visit(sim, "not.a.jwt").status_code == 401
    assert visit(sim, token(sim), app_id="vpaas-magic-cookie-" + "e" * 32).status_code == 404


def test_self_hosted_checks_hs256_with_the_app_secret(self_hosted: JitsiSimulator) -> None:
    sim = self_hosted
    good = token(sim, alg="HS256", key=SIM_APP_SECRET, aud=sim.config.app_id, iss=sim.config.app_id,
                 sub=sim.config.domain)
    assert httpx2.get(f"{sim.base_url}/{ROOM}", params={"jwt": good}).status_code == 200
    forged = token(sim, alg="HS256", key="x" * 40, aud=sim.config.app_id, iss=sim.config.app_id, sub="*")
    assert httpx2.get(f"{sim.base_url}/{ROOM}", params={"jwt": forged}).status_code == 401
    jaas_style = httpx2.get(f"{sim.base_url}/{ROOM}", params={"jwt": token(sim)})  # RS256
    assert jaas_style.status_code == 401 and "HS256 only" in jaas_style.text


# --- rooms and webhooks ------------------------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.fail_next = 0

    async def handle(self, request: Request) -> Response:
        if self.fail_next:
            self.fail_next -= 1
            return Response(status_code=503)
        self.received.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    from viltbridge.providers.serving import BackgroundServer

    sink = Receiver()
    server = BackgroundServer(Starlette(routes=[Route("/hook", sink.handle, methods=["POST"])]))
    server.start()
    yield sink, server.url + "/hook"
    server.stop()


def test_a_room_lives_from_its_first_join_to_its_last_leave(jitsi_simulator: JitsiSimulator,
                                                           receiver: tuple[Receiver, str]) -> None:
    sink, url = receiver
    state = jitsi_simulator.reset(start=T0, deployment="jaas", webhook_url=url)
    state.join(ROOM, "Tess", email="tess@example.com", user_id="vb-t", moderator=True)
    state.advance(60)
    state.join(ROOM, "Ann", email="ann@example.com", user_id="vb-a")
    state.advance(600)
    state.leave(ROOM, "vb-a")
    state.leave(ROOM, "tess@example.com")
    assert state.room_names() == []
    kinds = [e["eventType"] for e in state.history]
    assert kinds == ["ROOM_CREATED", "PARTICIPANT_JOINED", "PARTICIPANT_JOINED", "PARTICIPANT_LEFT",
                     "PARTICIPANT_LEFT", "ROOM_DESTROYED"]
    assert len({e["sessionId"] for e in state.history}) == 1
    assert all(e["fqn"] == f"{jitsi_simulator.config.app_id}/{ROOM}" for e in state.history)
    # Every delivery is signed with the endpoint secret, dated by the simulator's clock when it was sent.
    for body, headers in sink.received:
        sent_at = T0 + timedelta(milliseconds=json.loads(body)["timestamp"] - int(T0.timestamp() * 1000))
        webhooks.verify_signature(body, headers, jitsi_simulator.config.webhook_secret, sent_at,
                                  tolerance=timedelta(0))
    assert [raw for raw, _ in sink.received] == [d.body.encode() for d in state.deliveries]


def test_a_failed_delivery_is_retried(jitsi_simulator: JitsiSimulator, receiver: tuple[Receiver, str]) -> None:
    sink, url = receiver
    state = jitsi_simulator.reset(start=T0, deployment="jaas", webhook_url=url)
    sink.fail_next = 2
    state.join(ROOM, "Ann", user_id="vb-a")
    assert state.deliveries[0].statuses == [503, 503, 200]
    assert len(sink.received) == 2  # ROOM_CREATED (after two failures), then PARTICIPANT_JOINED


def test_duplicates_and_out_of_order_deliveries_on_request(jitsi_simulator: JitsiSimulator,
                                                          receiver: tuple[Receiver, str]) -> None:
    sink, url = receiver
    state = jitsi_simulator.reset(start=T0, deployment="jaas", webhook_url=url, hold_deliveries=True,
                                  duplicate_deliveries=True)
    state.join(ROOM, "Ann", user_id="vb-a")
    state.advance(60)
    state.destroy_room(ROOM)
    assert sink.received == []
    state.flush_webhooks()
    order = [json.loads(body)["eventType"] for body, _ in sink.received]
    assert order == ["ROOM_DESTROYED"] * 2 + ["PARTICIPANT_LEFT"] * 2 + ["PARTICIPANT_JOINED"] * 2 + \
        ["ROOM_CREATED"] * 2


def test_the_scenario_api_over_http(sim: JitsiSimulator) -> None:
    joined = httpx2.post(f"{sim.base_url}/_sim/join", json={"room": ROOM, "name": "Ann", "user_id": "vb-a"})
    assert joined.status_code == 200 and joined.json()["room"] == ROOM
    assert httpx2.post(f"{sim.base_url}/_sim/advance", json={"seconds": 60}).status_code == 200
    assert httpx2.post(f"{sim.base_url}/_sim/leave", json={"room": ROOM, "who": "vb-a"}).json()["remaining"] == 0
    assert httpx2.post(f"{sim.base_url}/_sim/leave", json={"room": ROOM, "who": "vb-a"}).status_code == 400
    assert httpx2.post(f"{sim.base_url}/_sim/nope", json={}).status_code == 404
    events = httpx2.post(f"{sim.base_url}/_sim/events").json()
    assert [e["eventType"] for e in events][-1] == "ROOM_DESTROYED"
