"""Signed launch tokens: round trip, tamper resistance, expiry and key rotation."""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.launch_tokens import LaunchClaims, sign_launch, verify_launch

pytestmark = pytest.mark.pure

CHEAP = settings(max_examples=200, deadline=None)
KEY = b"k" * 32
OTHER_KEY = b"o" * 32
MAX_AGE = timedelta(hours=4)
ISSUED = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
TOKEN_CHARS = string.ascii_letters + string.digits + "-_"

claims_strategy = st.builds(
    LaunchClaims,
    connection_id=st.integers(1, 2**53),
    session_id=st.integers(1, 2**53),
    email=st.emails() | st.text(max_size=40),
    issued_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
keys_strategy = st.binary(min_size=16, max_size=64)


def _claims(**changes: object) -> LaunchClaims:
    base = LaunchClaims(connection_id=7, session_id=42, email="jane@example.com", issued_at=ISSUED)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _verify(token: str, keys: list[bytes], now: datetime = ISSUED) -> LaunchClaims:
    return verify_launch(token, keys, now=now, max_age=MAX_AGE)


def _assert_rejected(token: str, keys: list[bytes]) -> None:
    with pytest.raises((Forbidden, InvalidInput)) as caught:
        _verify(token, keys)
    message = caught.value.message
    assert "Launch again" in message  # tells the person what to do


# --- round trip -------------------------------------------------------------------------------------------------


def test_round_trip_example() -> None:
    claims = _claims(session_id=43)
    assert _verify(sign_launch(claims, KEY), [KEY]) == claims


def test_token_is_url_safe() -> None:
    token = sign_launch(_claims(email="ö+/?&=#@example.com"), KEY)
    assert set(token) <= set(TOKEN_CHARS + ".")


@CHEAP
@given(claims=claims_strategy, key=keys_strategy, age=st.timedeltas(min_value=timedelta(0), max_value=MAX_AGE))
def test_round_trip_property(claims: LaunchClaims, key: bytes, age: timedelta) -> None:
    token = sign_launch(claims, key)
    verified = verify_launch(token, [key], now=claims.issued_at + age, max_age=MAX_AGE)
    assert verified == dataclasses.replace(claims, issued_at=claims.issued_at.replace(microsecond=0))


def test_claims_cannot_be_swapped_between_tokens() -> None:
    body_a, _, _ = sign_launch(_claims(session_id=42), KEY).partition(".")
    _, _, signature_b = sign_launch(_claims(session_id=43), KEY).partition(".")
    _assert_rejected(f"{body_a}.{signature_b}", [KEY])


# --- tampering --------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(claims=claims_strategy, data=st.data())
def test_any_single_character_change_is_rejected(claims: LaunchClaims, data: st.DataObject) -> None:
    token = sign_launch(claims, KEY)
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(TOKEN_CHARS + ".=+/ %é\x00").filter(lambda c: c != token[position]), label="replacement"
    )
    _assert_rejected(token[:position] + replacement + token[position + 1:], [KEY])


@pytest.mark.parametrize("part", ["body", "signature"])
def test_every_replacement_of_the_last_character_is_rejected(part: str) -> None:
    # The last base64 character carries unused bits; a lenient decoder would map several characters to the same
    # bytes and so accept a token that is not the one we issued.
    token = sign_launch(_claims(), KEY)
    body, _, signature = token.partition(".")
    for char in TOKEN_CHARS:
        if part == "body" and char != body[-1]:
            _assert_rejected(f"{body[:-1]}{char}.{signature}", [KEY])
        if part == "signature" and char != signature[-1]:
            _assert_rejected(f"{body}.{signature[:-1]}{char}", [KEY])


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_inserting_or_deleting_a_character_is_rejected(data: st.DataObject) -> None:
    token = sign_launch(_claims(), KEY)
    position = data.draw(st.integers(0, len(token) - 1))
    if data.draw(st.booleans(), label="delete"):
        mangled = token[:position] + token[position + 1:]
    else:
        mangled = token[:position] + data.draw(st.sampled_from(TOKEN_CHARS + "=.é")) + token[position:]
    _assert_rejected(mangled, [KEY])


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.", ".abc", "a.b", "a.b.c", "%%%.%%%", "é.é"])
def test_mangled_tokens_are_rejected(token: str) -> None:
    _assert_rejected(token, [KEY])


def test_truncated_token_is_rejected() -> None:
    token = sign_launch(_claims(), KEY)
    for length in range(len(token)):
        _assert_rejected(token[:length], [KEY])


def test_forged_with_another_key_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        _verify(sign_launch(_claims(), OTHER_KEY), [KEY])


def test_no_keys_accepts_nothing() -> None:
    with pytest.raises(Forbidden):
        _verify(sign_launch(_claims(), KEY), [])


# --- expiry -----------------------------------------------------------------------------------------------------


def test_valid_up_to_max_age() -> None:
    token = sign_launch(_claims(), KEY)
    assert _verify(token, [KEY], now=ISSUED + MAX_AGE) == _claims()


@pytest.mark.parametrize("late", [timedelta(seconds=1), timedelta(hours=1), timedelta(days=400)])
def test_expired_after_max_age(late: timedelta) -> None:
    token = sign_launch(_claims(), KEY)
    with pytest.raises(Forbidden) as caught:
        _verify(token, [KEY], now=ISSUED + MAX_AGE + late)
    assert "expired" in caught.value.message


@CHEAP
@given(claims=claims_strategy,
       max_age=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
       late=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)))
def test_expiry_property(claims: LaunchClaims, max_age: timedelta, late: timedelta) -> None:
    token = sign_launch(claims, KEY)
    with pytest.raises(Forbidden):
        verify_launch(token, [KEY], now=claims.issued_at + max_age + late, max_age=max_age)


# --- key rotation ------------------------------------------------------------------------------------------------


@CHEAP
@given(keys=st.lists(keys_strategy, min_size=1, max_size=5, unique=True), data=st.data())
def test_token_verifies_while_its_key_is_anywhere_in_the_list(keys: list[bytes], data: st.DataObject) -> None:
    signing_key = data.draw(st.sampled_from(keys), label="signing_key")
    token = sign_launch(_claims(), signing_key)
    assert _verify(token, keys) == _claims()
    remaining = [key for key in keys if key != signing_key]
    with pytest.raises(Forbidden):
        _verify(token, remaining)


def test_rotation_sequence() -> None:
    old, new = b"old-key" * 5, b"new-key" * 5
    token = sign_launch(_claims(), old)
    assert _verify(token, [old]) == _claims()
    assert _verify(token, [new, old]) == _claims()  # rotated: new key signs, old still verifies
    assert _verify(sign_launch(_claims(), new), [new, old]) == _claims()
    with pytest.raises(Forbidden):
        _verify(token, [new])  # old key retired


def test_a_token_is_the_documented_seal_byte_for_byte():
    """Links already handed out must stay valid across releases: the token is base64url(compact JSON) "."
    base64url(HMAC-SHA256), unpadded, computed here independently of `core.sealed`."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = LaunchClaims(7, 42, "Jane.Doe@example.com", ISSUED)
    body = b64(json.dumps([2, 7, 42, "Jane.Doe@example.com", int(ISSUED.timestamp())]).replace(" ", "").encode())
    expected = f"{body}.{b64(hmac.new(KEY, body.encode(), hashlib.sha256).digest())}"
    assert sign_launch(claims, KEY) == expected
