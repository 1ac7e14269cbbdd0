"""The provider payload fixture loader: found through the package, and a wrong name lists what exists."""

from __future__ import annotations

import pytest

from tests.providers.fixtures import fixture_bytes, fixture_json, fixture_names

pytestmark = pytest.mark.pure


def test_a_fixture_is_read_from_the_providers_package() -> None:
    assert "analytics_callback.json" in fixture_names("bbb")
    assert fixture_json("bbb", "analytics_callback.json") is not None
    assert fixture_bytes("bbb", "analytics_callback.json").lstrip().startswith((b"{", b"["))


def test_a_wrong_name_fails_listing_the_fixtures_that_exist() -> None:
    with pytest.raises(FileNotFoundError) as missing:
        fixture_bytes("teams", "no_such_payload.json")
    message = str(missing.value)
    assert "no fixture 'no_such_payload.json' for provider 'teams'" in message
    assert all(name in message for name in fixture_names("teams"))
    assert "attendance_records.json" in message


def test_names_can_be_filtered_by_a_glob() -> None:
    names = fixture_names("zoom", "webhook_*.json")
    assert names and all(name.startswith("webhook_") and name.endswith(".json") for name in names)
