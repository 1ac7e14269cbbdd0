"""Jitsi settings (every problem named at once, secrets never shown) and the per-person JWT: header, claims, window
and moderator rights, decoded with the public key (JaaS) or the app secret (self-hosted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import MeetingSpec, Person
from viltbridge.providers.jitsi.adapter import JitsiProvider
from viltbridge.providers.jitsi.settings import JitsiSettings
from viltbridge.providers.jitsi.simulator.state import (
    SIM_APP_ID,
    SIM_APP_SECRET,
    demo_private_key_pem,
    public_key_pem,
)
from viltbridge.providers.naming import personal_id_for

pytestmark = pytest.mark.pure

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PEM = demo_private_key_pem()
PUBLIC = public_key_pem(PEM)


def jaas(**changes: Any) -> dict[str, Any]:
    return {"deployment": "jaas", "app_id": SIM_APP_ID, "key_id": "4f4910", "private_key": PEM,
            "webhook_secret": "whsec_endpoint", **changes}


def self_hosted(**changes: Any) -> dict[str, Any]:
    return {"deployment": "self_hosted", "base_url": "https://meet.example.org/", "app_id": "viltbridge",
            "app_secret": SIM_APP_SECRET, **changes}


def pem_of(key: Any) -> str:
    return str(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode())


# --- settings ----------------------------------------------------------------------------------------------------


def test_jaas_defaults_and_the_key_id_in_either_form() -> None:
    settings = JitsiSettings.from_settings(jaas(key_id=f"{SIM_APP_ID}/4f4910"))
    assert settings.base_url == "https://8x8.vc" and settings.key_id == "4f4910"
    assert settings.kid == f"{SIM_APP_ID}/4f4910" and settings.webhooks


def test_self_hosted_defaults_the_domain_to_the_host_and_needs_no_webhooks() -> None:
    settings = JitsiSettings.from_settings(self_hosted())
    assert settings.base_url == "https://meet.example.org" and settings.domain == "meet.example.org"
    assert not settings.webhooks and settings.kid is None


def test_a_pem_pasted_on_one_line_with_escaped_newlines_is_accepted() -> None:
    JitsiSettings.from_settings(jaas(private_key=PEM.replace("\n", "\\n")))


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        JitsiSettings.from_settings({"deployment": "jaas", "app_id": "vpaas-magic-cookie-xyz", "private_key": "nope",
                                     "app_secret": "x" * 40, "colour": "blue"})
    message = caught.value.message
    for expected in ("app_id: must be the JaaS AppID", "key_id: missing", "private_key: is not a PEM private key",
                     "app_secret: is only used with deployment self_hosted", "webhook_secret: missing",
                     "colour: unknown setting"):
        assert expected in message, message
    assert "nope" not in message  # never quotes what was given for a secret


def test_self_hosted_problems_are_named_too() -> None:
    with pytest.raises(InvalidInput) as caught:
        JitsiSettings.from_settings({"deployment": "self_hosted", "app_secret": "short", "key_id": "k",
                                     "base_url": "meet.example.org"})
    message = caught.value.message
    for expected in ("app_id: missing", "app_secret: must be at least 32 characters", "key_id: is only used with",
                     "base_url: must be an http(s) URL"):
        assert expected in message, message


def test_an_unknown_deployment_is_refused() -> None:
    with pytest.raises(InvalidInput, match="deployment"):
        JitsiSettings.from_settings({"deployment": "cloud"})


@pytest.mark.parametrize(("key", "problem"), [
    (rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
    (ec.generate_private_key(ec.SECP256R1()), "not an RSA key"),
])
def test_weak_or_non_rsa_keys_are_refused(key: Any, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        JitsiSettings.from_settings(jaas(private_key=pem_of(key)))


def test_a_key_id_of_another_app_is_refused() -> None:
    with pytest.raises(InvalidInput, match="another AppID"):
        JitsiSettings.from_settings(jaas(key_id="vpaas-magic-cookie-ffffffffffffffffffffffffffffffff/4f4910"))


def test_secrets_never_show_in_reprs() -> None:
    settings = JitsiSettings.from_settings(jaas())
    provider = JitsiProvider(settings)
    for text in (repr(settings), str(settings), repr(provider), repr(provider.signer)):
        assert "PRIVATE KEY" not in text and "whsec_endpoint" not in text


# --- tokens ------------------------------------------------------------------------------------------------------


def spec(**changes: Any) -> MeetingSpec:
    values: dict[str, Any] = {"session_key": "1:sess-1", "title": "Forklift safety", "description": "",
                              "starts_at": START, "ends_at": START + timedelta(hours=1), "zone": "UTC",
                              "utc_offset_minutes": 0, "host": None, **changes}
    return MeetingSpec(**values)


async def launch(provider: JitsiProvider, email: str, role: Role, **spec_changes: Any) -> tuple[str, dict[str, Any]]:
    meeting = await provider.create_meeting(spec(**spec_changes))
    link = await provider.launch_link(meeting, Person(email), role)
    return link.url, link.identity


def decode_jaas(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    token = url.split("?jwt=", 1)[1]
    claims = jwt.decode(token, PUBLIC, algorithms=["RS256"], audience="jitsi", issuer="chat",
                        options={"verify_exp": False, "verify_nbf": False})
    return jwt.get_unverified_header(token), claims


def at(moment: datetime) -> JitsiProvider:
    return JitsiProvider(JitsiSettings.from_settings(jaas()), clock=lambda: moment)


async def test_a_learner_gets_a_jaas_token_for_the_room_without_moderator_rights() -> None:
    provider = at(START - timedelta(minutes=10))
    url, identity = await launch(provider, "Jane@Example.com", Role.ATTENDEE)
    header, claims = decode_jaas(url)
    room = identity["room"]
    assert url.startswith(f"https://8x8.vc/{SIM_APP_ID}/{room}?jwt=")
    assert header == {"alg": "RS256", "kid": f"{SIM_APP_ID}/4f4910", "typ": "JWT"}
    assert (claims["aud"], claims["iss"], claims["sub"], claims["room"]) == ("jitsi", "chat", SIM_APP_ID, room)
    user = claims["context"]["user"]
    assert user["moderator"] == "false" and user["email"] == "Jane@Example.com"
    assert set(claims["context"]["features"].values()) == {"false"}  # features are for moderators only
    # The id is derived from the email (any spelling), and is not the email.
    assert user["id"] == identity[PERSONAL_ID] == personal_id_for("jane@example.com", provider.settings.id_secret())
    assert "jane" not in user["id"].lower()


@pytest.mark.parametrize("role", [Role.HOST, Role.COHOST])
async def test_instructors_are_moderators_with_their_meetings_features(role: Role) -> None:
    url, identity = await launch(at(START), "tess@example.com", role,
                                 extended_options={"allow_livestreaming": True})
    _, claims = decode_jaas(url)
    features = claims["context"]["features"]
    assert claims["context"]["user"]["moderator"] == "true" and identity["moderator"] is True
    assert features["recording"] == features["livestreaming"] == features["file-upload"] == "true"
    assert features["transcription"] == features["outbound-call"] == features["sip-outbound-call"] == "false"


async def test_the_window_runs_from_before_the_start_until_after_the_end() -> None:
    _, claims = decode_jaas((await launch(at(START - timedelta(minutes=10)), "a@example.com", Role.ATTENDEE))[0])
    assert claims["nbf"] == int((START - timedelta(minutes=35)).timestamp())  # 30 min early, 5 min skew
    assert claims["exp"] == int((START + timedelta(hours=1, minutes=90)).timestamp())
    # A host opening the room two hours early (a long launch window) gets a token valid at once.
    early = START - timedelta(hours=2)
    _, claims = decode_jaas((await launch(at(early), "tess@example.com", Role.HOST))[0])
    assert claims["nbf"] == int((early - timedelta(minutes=5)).timestamp())


async def test_a_token_is_never_minted_already_expired() -> None:
    late = START + timedelta(hours=3)
    _, claims = decode_jaas((await launch(at(late), "a@example.com", Role.ATTENDEE))[0])
    assert claims["exp"] >= int((late + timedelta(minutes=10)).timestamp())


async def test_self_hosted_tokens_are_hs256_for_the_domain() -> None:
    provider = JitsiProvider(JitsiSettings.from_settings(self_hosted()), clock=lambda: START)
    url, identity = await launch(provider, "tess@example.com", Role.HOST)
    assert url.startswith(f"https://meet.example.org/{identity['room']}?jwt=")
    token = url.split("?jwt=", 1)[1]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SIM_APP_SECRET, algorithms=["HS256"], audience="viltbridge", issuer="viltbridge",
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims["sub"] == "meet.example.org" and claims["room"] == identity["room"]
    assert claims["context"]["user"]["moderator"] == "true"
