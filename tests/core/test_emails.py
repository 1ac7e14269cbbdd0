"""Email handling: the tolerant base64 decoding of the launch path and the InstructorEmails list parser."""

from __future__ import annotations

import base64
import json
import string
from urllib.parse import quote

import pytest
from email_validator import validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from viltbridge.core.emails import (
    decode_base64_email,
    encode_base64_email,
    normalize_email,
    parse_email_list,
    plainly_valid,
)
from viltbridge.core.errors import InvalidInput

pytestmark = pytest.mark.pure

CHEAP = settings(max_examples=200, deadline=None)

# Valid addresses by construction: dot-atom local parts (RFC 5322 atext, any case) at alphanumeric domains.
_atom = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=10)
_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_label = st.from_regex(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})?", fullmatch=True)
_tld = st.sampled_from(["com", "org", "de", "io", "CO", "museum", "Example"])
_domain = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(_label, min_size=1, max_size=3), _tld)
emails = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
UNICODE_EMAILS = ["jöhn.dœ@exämple.de", "用户@例子.公司", "José.Núñez@Example.com"]


def _urlsafe(email: str) -> str:
    return base64.urlsafe_b64encode(email.encode("utf-8")).decode("ascii")


def _refused(encoded: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        decode_base64_email(encoded)
    return caught.value.message


# --- decoding: the accepted spellings ---------------------------------------------------------------------------


def test_decodes_the_standard_padded_encoding_cornerstone_sends() -> None:
    assert decode_base64_email("amFuZUBleGFtcGxlLmNvbQ==") == "jane@example.com"


@pytest.mark.parametrize(
    "encoded",
    [
        "amFuZUBleGFtcGxlLmNvbQ",  # padding stripped
        "amFuZUBleGFtcGxlLmNvbQ%3D%3D",  # padding percent-encoded
        "amFuZUBleGFtcGxlLmNvbQ%3d%3d",  # ... in lower case
        "amFuZUBleGFtcGxlLmNvbQ=",  # half the padding
        "  amFuZUBleGFtcGxlLmNvbQ==\n",  # surrounding whitespace
    ],
)
def test_decodes_padding_variants(encoded: str) -> None:
    assert decode_base64_email(encoded) == "jane@example.com"


def test_decodes_both_alphabets_where_they_differ() -> None:
    email = "~~~???@x.com"  # encodes to '+' and '/' in the standard alphabet
    standard, urlsafe = encode_base64_email(email), _urlsafe(email)
    assert "+" in standard and "/" in standard
    assert "-" in urlsafe and "_" in urlsafe
    for encoded in (standard, urlsafe, urlsafe.rstrip("="), quote(standard, safe=""), quote(urlsafe, safe="")):
        assert decode_base64_email(encoded) == email


def test_decoded_email_is_trimmed_and_keeps_the_lms_spelling() -> None:
    # Attendance goes back to the LMS in its own spelling; comparisons use normalize_email.
    assert decode_base64_email(encode_base64_email("  Jane.DOE@Example.COM ")) == "Jane.DOE@Example.COM"


@pytest.mark.parametrize("email", UNICODE_EMAILS)
def test_unicode_emails_round_trip(email: str) -> None:
    assert decode_base64_email(encode_base64_email(email)) == email
    assert decode_base64_email(_urlsafe(email).rstrip("=")) == email


@CHEAP
@given(email=emails)
def test_round_trip_with_encode_base64_email(email: str) -> None:
    encoded = encode_base64_email(email)
    assert decode_base64_email(encoded) == email.strip()
    assert normalize_email(decode_base64_email(encoded)) == email.strip().lower()


@CHEAP
@given(email=emails, variant=st.sampled_from(["urlsafe", "urlsafe-unpadded", "standard-unpadded", "percent",
                                              "percent-urlsafe"]))
def test_round_trip_with_every_accepted_variant(email: str, variant: str) -> None:
    standard = encode_base64_email(email)
    encoded = {
        "urlsafe": _urlsafe(email),
        "urlsafe-unpadded": _urlsafe(email).rstrip("="),
        "standard-unpadded": standard.rstrip("="),
        "percent": quote(standard, safe=""),
        "percent-urlsafe": quote(_urlsafe(email), safe=""),
    }[variant]
    assert decode_base64_email(encoded) == email.strip()


# --- decoding: refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    ["", "   ", "%20", "jane@example.com", "amFuZUBleGFtcGxl!LmNvbQ", "amFu=ZUBleGFtcGxlLmNvbQ", "YQ===",
     "amFuZUBleGFtcGxlLmNvbQ%", "\uff4a\uff41\uff4e\uff45"]  # full-width letters,
)
def test_non_base64_is_refused_with_a_clear_message(encoded: str) -> None:
    message = _refused(encoded)
    assert "not base64" in message
    assert "e.g." in message  # shows what to send instead


@CHEAP
@given(email=emails)
def test_truncated_base64_is_refused(email: str) -> None:
    unpadded = encode_base64_email(email).rstrip("=")
    cut = unpadded[: len(unpadded) - (len(unpadded) - 1) % 4]  # the longest prefix whose length is 1 mod 4
    assert len(cut) % 4 == 1
    assert "truncated" in _refused(cut)


@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd", b"jane@example.com\xff", b"\xc3\x28@example.com", b"\x80"])
def test_non_utf8_is_refused(raw: bytes) -> None:
    message = _refused(base64.b64encode(raw).decode())
    assert "does not decode to text" in message


@CHEAP
@given(raw=st.binary(min_size=1, max_size=60))
def test_any_non_utf8_bytes_are_refused(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        raw = b"\xff" + raw
    _refused(base64.urlsafe_b64encode(raw).decode().rstrip("="))


@pytest.mark.parametrize("text", ["jane", "jane@", "@example.com", "jane@@example.com", "jane doe@example.com",
                                  "jane@example", "   "])
def test_decoded_text_that_is_not_an_email_is_refused(text: str) -> None:
    message = _refused(encode_base64_email(text))
    assert "email" in message.lower()
    assert "launch URL" in message


@CHEAP
@given(text=st.text(min_size=1, max_size=40).filter(lambda t: "@" not in t))
def test_decoded_text_without_at_sign_is_refused(text: str) -> None:
    _refused(encode_base64_email(text))


@CHEAP
@given(encoded=st.text(max_size=60) | st.text(alphabet=string.ascii_letters + string.digits + "+/_-=%", max_size=60))
def test_decoder_returns_a_normalised_email_or_invalid_input(encoded: str) -> None:
    try:
        result = decode_base64_email(encoded)
    except InvalidInput as exc:
        assert exc.message
    else:
        assert "@" in result
        assert result == normalize_email(result)


# --- InstructorEmails lists -----------------------------------------------------------------------------------


def _dedup_lower(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item.lower() for item in items))


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.com,bob@example.com",
        "ann@example.com;bob@example.com",
        "ann@example.com bob@example.com",
        "ann@example.com\tbob@example.com\n",
        " ann@example.com ; , bob@example.com ,",
        ["ann@example.com", "bob@example.com"],
        ["ann@example.com; bob@example.com"],
        '["ann@example.com", "bob@example.com"]',
        ' [ "ann@example.com" , "bob@example.com" ] ',
    ],
)
def test_accepts_delimited_strings_and_json_lists(value: object) -> None:
    assert parse_email_list(value, field="InstructorEmails") == ["ann@example.com", "bob@example.com"]


@pytest.mark.parametrize("value", [None, "", "   ", " ;, ", [], "[]"])
def test_empty_values_give_no_emails(value: object) -> None:
    assert parse_email_list(value, field="InstructorEmails") == []


def test_deduplicates_case_insensitively_keeping_first_order() -> None:
    value = "Bob@Example.com; ann@example.com, BOB@example.COM ann@EXAMPLE.com"
    assert parse_email_list(value, field="InstructorEmails") == ["bob@example.com", "ann@example.com"]


@settings(max_examples=100, deadline=None)
@given(
    items=st.lists(emails, min_size=1, max_size=6).flatmap(
        lambda xs: st.lists(st.sampled_from(xs), min_size=len(xs), max_size=2 * len(xs))
    ),
    separators=st.lists(st.sampled_from([",", ";", " ", "\n", "\t", ", ", " ; ", ",,"]), min_size=12, max_size=12),
    case=st.sampled_from([str, str.upper, str.lower]),
)
def test_delimited_string_property(items: list[str], separators: list[str], case: object) -> None:
    text = ""
    for i, item in enumerate(items):
        text += item if i == 0 else separators[i % len(separators)] + item
    result = parse_email_list(case(text), field="InstructorEmails")  # type: ignore[operator]
    assert result == _dedup_lower(items)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(emails, max_size=6), as_string=st.booleans())
def test_json_list_property(items: list[str], as_string: bool) -> None:
    value = json.dumps(items) if as_string else items
    assert parse_email_list(value, field="InstructorEmails") == _dedup_lower(items)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ann@example.com, not-an-email", "not-an-email"),
        (["ann@example.com", "bob"], "bob"),
        ("ann@example.com;bob@", "bob@"),
        ([1], "1"),
        (["ann@example.com", None], "None"),
        ([["ann@example.com"]], "ann@example.com"),
    ],
)
def test_bad_items_are_refused_naming_field_and_item(value: object, shown: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_email_list(value, field="InstructorEmails")
    assert "InstructorEmails" in caught.value.message
    assert shown in caught.value.message


@pytest.mark.parametrize("value", [5, 3.5, {"email": "ann@example.com"}, True, '["ann@example.com",', '[1, 2]'])
def test_values_that_are_not_lists_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_email_list(value, field="InstructorEmails")
    assert "InstructorEmails" in caught.value.message


@example(text="[")
@CHEAP
@given(text=st.text(max_size=40))
def test_list_parser_never_fails_with_anything_but_invalid_input(text: str) -> None:
    try:
        result = parse_email_list(text, field="InstructorEmails")
    except InvalidInput:
        return
    assert all(email == normalize_email(email) and "@" in email for email in result)
    assert len(result) == len(set(result))


# --- the cheap check in front of email_validator -----------------------------------------------------------------

# Strings near the edge of what the cheap check accepts: mostly its own language (so it accepts many of them), with
# labels and local parts around their length limits, dashes and dots where they may not be, special-use and numeric
# top-level domains, and now and then one character inserted that it does not allow.
_local_atom = st.text(alphabet="abz09_+-", min_size=1, max_size=12)
_edge_local = st.one_of(st.lists(_local_atom, min_size=1, max_size=4).map(".".join),
                        st.sampled_from(["a" * 64, "a" * 65, "a..b", ".a", "a.", "-a", "a-"]))
_edge_label = st.one_of(st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8})?", fullmatch=True),
                        st.text(alphabet="az09-", min_size=1, max_size=10),
                        st.sampled_from(["a" * 63, "a" * 64, "ab--cd", "xn--bcher-kva", "xn--a", "-a", "a-"]))
_edge_tld = st.one_of(st.sampled_from(["com", "io", "museum"]),
                      st.sampled_from(["test", "local", "onion", "arpa", "invalid", "localhost", "c", "c0m", "123",
                                       "x" * 63, "x" * 64]))


@st.composite
def edge_emails(draw: st.DrawFn) -> str:
    address = f"{draw(_edge_local)}@{'.'.join([*draw(st.lists(_edge_label, min_size=1, max_size=4)), draw(_edge_tld)])}"
    if draw(st.booleans()) and draw(st.booleans()):  # one character inserted, a quarter of the time
        where = draw(st.integers(0, len(address)))
        inserted = draw(st.sampled_from([".", "-", "@", "é", "A", "!", "'", " ", "\\", "_"]))
        address = address[:where] + inserted + address[where:]
    return address


@settings(max_examples=3000, deadline=None)
@given(candidate=st.one_of(edge_emails(), emails.map(normalize_email), st.text(max_size=40)))
@example("ab--cd@example.com")
@example("a@ab--cd.com")
@example("a@xn--bcher-kva.example")
@example(("a" * 64) + "@example.com")
@example(("a" * 65) + "@example.com")
@example("a@" + ".".join(["b" * 63] * 3) + "." + "c" * 57)
def test_the_cheap_email_check_accepts_nothing_email_validator_refuses(candidate: str) -> None:
    if plainly_valid(candidate):
        validate_email(candidate, check_deliverability=False, allow_smtputf8=True)


@pytest.mark.parametrize("plain", ["jane@example.com", "jane.doe+vilt@mail.example.co.uk", "j_d-1@a-b.io"])
def test_plain_addresses_take_the_cheap_check(plain: str) -> None:
    assert plainly_valid(plain)
