"""Fuzzing sends wrong credentials on purpose, many times (schemathesis checks that each is refused with 401):
the sign-in throttle, tested on its own, would answer 429 after the tenth."""

from __future__ import annotations

import pytest

from viltbridge.config import Settings


@pytest.fixture(name="settings")
def throttle_free_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_failure_limit": 1_000_000})
