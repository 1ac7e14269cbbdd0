"""The acceptance suite runs for every registered provider: each kind has a harness, and one without fails saying
where to add it."""

from __future__ import annotations

import pytest

from tests.providers.conftest import MissingHarness, harness_cases, harness_module
from viltbridge.providers.registry import PROVIDERS

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_every_registered_provider_has_a_harness(kind: str) -> None:
    assert callable(harness_module(kind).harness)


def test_a_kind_without_a_harness_is_refused_saying_where_to_add_one() -> None:
    with pytest.raises(MissingHarness) as missing:
        harness_module("skype")
    assert "provider 'skype' is registered" in str(missing.value)
    assert "add tests/providers/skype/harness.py" in str(missing.value)


def test_a_kind_without_a_harness_still_gets_a_case_to_fail_in() -> None:
    assert harness_cases(["link", "skype", "teams"]) == [
        ("link", ""), ("skype", ""), ("teams", "online_meeting"), ("teams", "calendar_event")]
