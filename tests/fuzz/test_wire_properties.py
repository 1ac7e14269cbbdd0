"""Properties of the wire-model parsers (no database): any JSON gets a model or an error naming the field, never an
unhandled exception; keys match in any case; dates, offsets, base64 emails and instructor lists round-trip."""

from __future__ import annotations

import base64
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.conftest import session_body
from viltbridge.core.emails import decode_base64_email, parse_email_list
from viltbridge.core.errors import InvalidInput
from viltbridge.core.times import EARLIEST_YEAR, LATEST_YEAR, parse_lms_datetime, parse_utc_offset
from viltbridge.lms.cornerstone.routes import session_input
from viltbridge.lms.cornerstone.wire import (
    AddInstructorRequest,
    SessionRequest,
    SessionUpdateRequest,
    UpdateInstructorRequest,
    describe_validation_error,
)

pytestmark = pytest.mark.pure

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
REQUEST_MODELS: list[type[BaseModel]] = [SessionRequest, SessionUpdateRequest, AddInstructorRequest,
                                         UpdateInstructorRequest]


def contract_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def any_case(key: str) -> st.SearchStrategy[str]:
    camel = key[:1].lower() + key[1:]
    return st.sampled_from([key, camel, key.lower(), key.upper()]) | st.builds(
        lambda flips: "".join(c.upper() if flip else c.lower() for c, flip in zip(key, flips, strict=True)),
        st.lists(st.booleans(), min_size=len(key), max_size=len(key)))


@st.composite
def bodies(draw: st.DrawFn, model: type[BaseModel]) -> Any:
    """Arbitrary JSON, mostly objects that use the model's keys (in any case) with arbitrary values."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    keys = draw(st.lists(st.sampled_from(contract_keys(model)), unique=True))
    body = {draw(any_case(key)): draw(json_values) for key in keys}
    body.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return body


@FUZZ
@given(data=st.data(), model=st.sampled_from(REQUEST_MODELS))
def test_any_json_parses_or_is_refused_naming_a_field(data: st.DataObject, model: type[BaseModel]) -> None:
    body = data.draw(bodies(model))
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        message = describe_validation_error(exc, "The request was not accepted")
        assert message.startswith("The request was not accepted: ")
        assert "the body" in message or any(name in message for name in model.model_fields), message
        return
    if isinstance(parsed, SessionRequest):
        try:
            session_input(parsed, "s-1")
        except InvalidInput as exc:
            named = {*model.model_fields, "TimeZone.UTCOffset", "SessionId", "InstructorEmails", "ExtendedOptions"}
            assert any(name in exc.message for name in named), exc.message


valid_session = session_body("s-1", InstructorEmails=["a@example.com", "b@example.com"], LoId="lo-1",
                             ExtendedOptions=[{"Id": "waiting_room", "IsChecked": True}])


@FUZZ
@given(data=st.data(), junk=st.dictionaries(st.text(min_size=1, max_size=12).filter(
    lambda k: k.lower() not in {name.lower() for name in SessionRequest.model_fields}), json_values, max_size=3))
def test_keys_match_in_any_case_and_unknown_keys_are_ignored(data: st.DataObject, junk: dict[str, Any]) -> None:
    def recased(value: Any) -> Any:
        if isinstance(value, dict):
            return {data.draw(any_case(k)): recased(v) for k, v in value.items()}
        if isinstance(value, list):
            return [recased(item) for item in value]
        return value

    assert SessionRequest.model_validate({**recased(valid_session), **junk}) == SessionRequest.model_validate(
        valid_session)


def test_the_first_spelling_of_a_key_wins() -> None:
    parsed = SessionRequest.model_validate({**valid_session, "title": "second", "TITLE": "third"})
    assert parsed.Title == valid_session["Title"]


moments = st.datetimes(min_value=datetime(EARLIEST_YEAR, 1, 2), max_value=datetime(LATEST_YEAR, 12, 30))
offsets = st.integers(-12 * 60, 14 * 60)


@FUZZ
@given(moment=moments, offset=offsets, fraction=st.booleans())
def test_dates_round_trip_in_every_accepted_spelling(moment: datetime, offset: int, fraction: bool) -> None:
    moment = moment.replace(microsecond=moment.microsecond if fraction else 0)
    utc = moment.replace(tzinfo=UTC)
    plain = moment.isoformat()
    local = utc.astimezone(timezone(timedelta(minutes=offset)))
    for spelling in (plain, plain + "Z", plain + "z", plain + "+00:00", f"  {plain}  ", local.isoformat()):
        assert parse_lms_datetime(spelling, field="DateBegin") == utc, spelling


@FUZZ
@given(value=json_values | st.text())
def test_anything_else_is_a_date_or_an_error_naming_the_field(value: Any) -> None:
    try:
        parsed = parse_lms_datetime(value, field="DateEnd")
    except InvalidInput as exc:
        assert exc.message.startswith("DateEnd "), exc.message
    else:
        assert parsed.tzinfo is UTC and EARLIEST_YEAR <= parsed.year <= LATEST_YEAR


def offset_spellings(minutes: int) -> list[Any]:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    spellings: list[Any] = [f"{sign}{hours:02d}:{rest:02d}", f"{sign}{hours:02d}{rest:02d}",
                            f"UTC{sign}{hours:02d}:{rest:02d}", f"GMT{sign}{hours}:{rest:02d}",
                            f"(UTC{sign}{hours:02d}:{rest:02d}) Somewhere/Zone", f"utc {sign} {hours}:{rest:02d}",
                            minutes / 60]
    if rest == 0:
        spellings += [f"{sign}{hours}", minutes // 60]
    if minutes < 0:
        spellings.append(f"\u2212{hours:02d}:{rest:02d}")  # a typographic minus, as pasted from documents
    return spellings


@FUZZ
@given(minutes=offsets)
def test_utc_offsets_round_trip_in_every_accepted_spelling(minutes: int) -> None:
    for spelling in offset_spellings(minutes):
        assert parse_utc_offset(spelling) == minutes, spelling


@FUZZ
@given(minutes=st.integers(-99 * 60, 99 * 60).filter(lambda m: not -12 * 60 <= m <= 14 * 60))
def test_offsets_beyond_real_zones_are_refused_naming_the_field(minutes: int) -> None:
    for spelling in offset_spellings(minutes):
        with pytest.raises(InvalidInput, match="UTCOffset"):
            parse_utc_offset(spelling)


@FUZZ
@given(value=json_values | st.text())
def test_anything_else_is_an_offset_or_an_error_naming_the_field(value: Any) -> None:
    try:
        minutes = parse_utc_offset(value)
    except InvalidInput as exc:
        assert "TimeZone.UTCOffset" in exc.message, exc.message
    else:
        assert -12 * 60 <= minutes <= 14 * 60


emails = st.emails(domains=st.sampled_from(["example.com", "example.org", "sub.example.net"]))


def base64_spellings(email: str) -> list[str]:
    standard = base64.b64encode(email.encode()).decode()
    url_safe = base64.urlsafe_b64encode(email.encode()).decode()
    return [standard, standard.rstrip("="), url_safe, url_safe.rstrip("="), quote(standard, safe=""),
            standard.replace("=", "%3D")]


@FUZZ
@given(email=emails)
def test_base64_emails_in_paths_round_trip(email: str) -> None:
    for spelling in base64_spellings(email):
        assert decode_base64_email(spelling) == email, spelling


@FUZZ
@given(segment=st.text(alphabet=string.printable + "éß€", max_size=60) | st.binary(max_size=40).map(
    lambda raw: base64.b64encode(raw).decode()))
def test_any_path_segment_is_an_email_or_an_error_a_person_can_act_on(segment: str) -> None:
    try:
        email = decode_base64_email(segment)
    except InvalidInput as exc:
        assert "launch URL" in exc.message, exc.message
    else:
        assert "@" in email


separators = st.sampled_from([",", ";", " ", ", ", " ; ", "\n", "\t,"])


@FUZZ
@given(people=st.lists(emails, min_size=1, max_size=5), data=st.data())
def test_instructor_lists_parse_in_every_accepted_shape(people: list[str], data: st.DataObject) -> None:
    expected = list(dict.fromkeys(email.lower() for email in people))
    joined = people[0] + "".join(data.draw(separators) + email for email in people[1:])
    shouted = [email.upper() if data.draw(st.booleans()) else email for email in people]
    for shape in (people, json.dumps(people), joined, f"  {joined} ", shouted, [joined]):
        assert parse_email_list(shape, field="InstructorEmails") == expected, shape


@FUZZ
@given(value=json_values | st.text().map(lambda text: "[" + text) | st.integers(1, 3000).map(
    lambda depth: "[" * depth + "]" * depth))
def test_any_instructor_value_is_a_list_or_an_error_naming_the_field(value: Any) -> None:
    try:
        parsed = parse_email_list(value, field="InstructorEmails")
    except InvalidInput as exc:
        assert "InstructorEmails" in exc.message, exc.message
    else:
        assert all("@" in email for email in parsed)


def test_a_deeply_nested_instructor_list_in_a_string_is_refused_naming_the_field() -> None:
    # A JSON string is not nesting to the body-depth check, so this reaches the list parser's own JSON parsing.
    with pytest.raises(InvalidInput, match="InstructorEmails"):
        parse_email_list("[" * 100_000 + "]" * 100_000, field="InstructorEmails")


@FUZZ
@given(text=st.text(min_size=1, max_size=20), surrogate=st.integers(0xD800, 0xDFFF).map(chr),
       model=st.sampled_from(REQUEST_MODELS), data=st.data())
def test_unpaired_surrogates_are_refused_naming_the_field(text: str, surrogate: str, model: type[BaseModel],
                                                          data: st.DataObject) -> None:
    field = data.draw(st.sampled_from([name for name, info in model.model_fields.items()
                                       if info.annotation is str or "str" in str(info.annotation)]))
    assume(field != "TimeZone")
    with pytest.raises(ValidationError) as refused:
        model.model_validate({field: text + surrogate})
    message = describe_validation_error(refused.value, "The request was not accepted")
    assert f"{field} contains an escaped character that is not valid Unicode" in message, message
