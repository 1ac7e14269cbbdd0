"""Checksums (the documented vector, all four algorithms), settings, and how BBB's XML answers are read."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from viltbridge.core.errors import InvalidInput, ProviderFailed
from viltbridge.providers.bbb.client import BbbApiError, checksum, parse_response, query_string, signed_url
from viltbridge.providers.bbb.settings import BbbSettings

DOC_QUERY = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444"
DOC_SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b"
ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def test_the_documented_example_checksum() -> None:
    assert checksum("create", DOC_QUERY, DOC_SECRET, "sha1") == "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"


def test_the_documented_query_is_encoded_as_bbb_shows_it() -> None:
    params = {"name": "Test Meeting", "meetingID": "abc123", "attendeePW": "111222", "moderatorPW": "333444"}
    assert query_string(params) == DOC_QUERY


@pytest.mark.parametrize(("algorithm", "length"), [("sha1", 40), ("sha256", 64), ("sha384", 96), ("sha512", 128)])
def test_each_algorithm_hashes_call_query_and_secret(algorithm: str, length: int) -> None:
    digest = checksum("create", DOC_QUERY, DOC_SECRET, algorithm)  # type: ignore[arg-type]
    assert len(digest) == length
    assert digest == hashlib.new(algorithm, f"create{DOC_QUERY}{DOC_SECRET}".encode()).hexdigest()


def test_an_empty_query_hashes_the_call_name_and_secret() -> None:
    assert checksum("getMeetings", "", "s3cret-value", "sha1") == hashlib.sha1(b"getMeetingss3cret-value").hexdigest()


@given(query=st.text(max_size=60), other=st.text(max_size=60), secret=st.text(min_size=1, max_size=40),
       algorithm=st.sampled_from(ALGORITHMS))
def test_any_change_to_the_query_changes_the_checksum(query: str, other: str, secret: str, algorithm: str) -> None:
    if query != other:
        assert checksum("join", query, secret, algorithm) != checksum("join", other, secret, algorithm)  # type: ignore[arg-type]


@given(query=st.text(max_size=60), secret=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40),
       algorithm=st.sampled_from(ALGORITHMS))
def test_any_change_to_the_secret_changes_the_checksum(query: str, secret: str, other: str, algorithm: str) -> None:
    if secret != other:
        assert checksum("join", query, secret, algorithm) != checksum("join", query, other, algorithm)  # type: ignore[arg-type]


def test_signed_url_appends_the_checksum_of_the_exact_query() -> None:
    settings = BbbSettings(server_url="https://bbb.example.org/bigbluebutton/", shared_secret=SecretStr(DOC_SECRET),
                           checksum_algorithm="sha1")
    url = signed_url(settings, "create", {"name": "Test Meeting", "meetingID": "abc123", "attendeePW": "111222",
                                          "moderatorPW": "333444"})
    assert url == (f"https://bbb.example.org/bigbluebutton/api/create?{DOC_QUERY}"
                   "&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17")


@pytest.mark.parametrize("server_url", ["https://bbb.example.org", "https://bbb.example.org/bigbluebutton/",
                                        "https://bbb.example.org/bigbluebutton/api"])
def test_the_api_url_is_found_from_any_usual_server_url(server_url: str) -> None:
    settings = BbbSettings(server_url=server_url, shared_secret=SecretStr("0123456789abcdef"))
    assert settings.api_url == "https://bbb.example.org/bigbluebutton/api/"


def test_wrong_settings_are_named_and_the_secret_is_not_shown() -> None:
    with pytest.raises(InvalidInput) as caught:
        BbbSettings.from_settings({"server_url": "bbb.example.org", "shared_secret": "0123456789abcdef",
                                   "checksum_algorithm": "md5"})
    text = str(caught.value)
    assert "server_url" in text and "checksum_algorithm" in text and "0123456789abcdef" not in text
    settings = BbbSettings(server_url="https://b.example", shared_secret=SecretStr("0123456789abcdef"))
    assert "0123456789abcdef" not in repr(settings)


def test_a_failed_answer_becomes_an_admin_readable_error() -> None:
    xml = ("<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey>"
           "<message>You did not pass the checksum security check</message></response>")
    with pytest.raises(BbbApiError) as caught:
        parse_response(xml, "create the meeting m1")
    assert caught.value.code == "checksumError"
    assert "shared_secret" in caught.value.message and "bbb-conf --secret" in caught.value.message
    assert not caught.value.transient


def test_unknown_failures_keep_bbbs_words() -> None:
    xml = ("<response><returncode>FAILED</returncode><messageKey>maxParticipantsReached</messageKey>"
           "<message>The number of participants allowed for this meeting has been reached.</message></response>")
    with pytest.raises(BbbApiError) as caught:
        parse_response(xml, "join")
    assert "number of participants" in caught.value.message and "maxParticipantsReached" in caught.value.message


def test_lists_and_metadata_are_read() -> None:
    xml = ("<response><returncode>SUCCESS</returncode><meetingName>Safety</meetingName><attendees>"
           "<attendee><userID>u1</userID><role>VIEWER</role></attendee></attendees>"
           "<metadata><course>math</course></metadata></response>")
    body = parse_response(xml, "read")
    assert body["attendees"] == [{"userID": "u1", "role": "VIEWER"}]
    assert body["metadata"] == {"course": "math"}


@pytest.mark.parametrize("text", ["<html><body>Welcome to nginx</body></html>", "not xml", "<response/>"])
def test_an_answer_that_is_not_bbb_points_at_server_url(text: str) -> None:
    with pytest.raises(ProviderFailed) as caught:
        parse_response(text, "create the meeting")
    assert "server_url" in caught.value.message
