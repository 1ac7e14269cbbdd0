"""A server process hides what start-up made from the garbage collector (gc.freeze): full collections over the
modules, the app and the pools paused the launch endpoint for 80-110 ms every few seconds. Anything else (tests,
CLI commands building an app) freezes nothing, since frozen objects are never freed."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from viltbridge.config import Settings
from viltbridge.web.app import create_app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_a_server_process_freezes_what_start_up_made(settings: Settings, clock: Any, unfrozen: None) -> None:
    app = create_app(settings, clock=clock, public_url="http://testserver", freeze_startup_objects=True)
    assert gc.get_freeze_count() == 0  # building the app is not start-up: the lifespan is
    with TestClient(app) as client:
        assert gc.get_freeze_count() > 0
        assert client.get("/healthz").status_code == 200


def test_an_app_built_for_anything_else_freezes_nothing(settings: Settings, clock: Any, unfrozen: None) -> None:
    with TestClient(create_app(settings, clock=clock, public_url="http://testserver")) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
