"""The provider acceptance suite (test_acceptance.py) runs once per kind in the provider registry, against each
provider's harness: its real adapter wired to its environment (its simulator, where the provider has an API) and
hosts that exist there. A provider's harness is `tests/providers/<kind>/harness.py`:

- `harness(environment, variant) -> Harness`, called for each test;
- `environment()` (optional), a context manager started once for the suite's tests of that kind (a simulator), and
  stopped after them;
- `VARIANTS` (optional), names for running the suite more than once (ids read `test_x[<kind>-<variant>]`).

A registered kind without that module fails each suite test, saying where to add it."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from viltbridge.core.provider import InstructorSpec, MeetingSpec, Provider
from viltbridge.providers.registry import PROVIDERS
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator


class Capture(logging.Handler):
    """Collects log lines, DEBUG included (tests of what providers log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Harness:
    provider: Provider
    host: InstructorSpec
    cohost: InstructorSpec
    spec: Callable[..., MeetingSpec]


def meeting_spec(host: InstructorSpec, cohost: InstructorSpec) -> Callable[..., MeetingSpec]:
    def build(**changes: object) -> MeetingSpec:
        start = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
        values: dict[str, object] = {
            "session_key": "1:sess-1", "title": "Safety basics", "description": "Onboarding",
            "starts_at": start, "ends_at": start + timedelta(hours=1), "zone": "America/New_York",
            "utc_offset_minutes": -300, "host": host, "co_hosts": (cohost,), "extended_options": {},
        }
        values.update(changes)
        return MeetingSpec(**values)  # type: ignore[arg-type]

    return build


def zoom_settings(sim: ZoomSimulator, **extra: str) -> dict[str, str]:
    config = sim.config
    return {"account_id": config.account_id, "client_id": config.client_id, "client_secret": config.client_secret,
            "webhook_secret_token": config.webhook_secret_token, "api_base_url": sim.api_base_url,
            "oauth_token_url": sim.oauth_token_url, **extra}


@pytest.fixture(scope="session")
def zoom_simulator() -> Iterator[ZoomSimulator]:
    with running_simulator(start=datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) as simulator:
        yield simulator


class MissingHarness(LookupError):
    """A registered provider kind without an acceptance harness."""


def harness_module(kind: str) -> ModuleType:
    """`tests/providers/<kind>/harness.py`, or MissingHarness saying where to add it."""
    name = f"tests.providers.{kind}.harness"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name not in (name, f"tests.providers.{kind}"):
            raise  # the harness exists but imports something that does not
    raise MissingHarness(
        f"provider '{kind}' is registered (providers/registry.py) but has no acceptance harness: add "
        f"tests/providers/{kind}/harness.py defining `harness(environment, variant) -> Harness` (and `environment()`, "
        "`VARIANTS` if it needs them), as the other provider folders do; see tests/providers/conftest.py")


def harness_cases(kinds: list[str]) -> list[tuple[str, str]]:
    """(kind, variant) for each run of the suite. A kind without a harness still gets one case, which fails."""
    cases: list[tuple[str, str]] = []
    for kind in kinds:
        try:
            variants = tuple(getattr(harness_module(kind), "VARIANTS", ("",)))
        except MissingHarness:
            variants = ("",)
        cases.extend((kind, variant) for variant in variants)
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The acceptance suite's tests (those asking for `harness`) once per registered kind (and variant). Session
    scope groups them by kind, so each provider's environment starts once."""
    if "harness" not in metafunc.fixturenames:
        return
    cases = harness_cases(sorted(PROVIDERS))
    metafunc.parametrize(("provider_environment", "harness_case"), [(kind, (kind, variant)) for kind, variant in cases],
                         ids=[f"{kind}-{variant}" if variant else kind for kind, variant in cases],
                         indirect=["provider_environment"], scope="session")


@pytest.fixture(scope="session")
def provider_environment(request: pytest.FixtureRequest) -> Iterator[Any]:
    """What a kind's harnesses share (its simulator), up for the suite's tests of that kind, stopped after them."""
    try:
        module = harness_module(request.param)
    except MissingHarness as missing:
        failure = str(missing)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    with getattr(module, "environment", nullcontext)() as environment:
        yield environment


@pytest.fixture
def harness(harness_case: tuple[str, str], provider_environment: Any) -> Harness:
    """A fresh harness per test (the case's parameters are session-scoped; the adapter is not)."""
    kind, variant = harness_case
    built: Harness = harness_module(kind).harness(provider_environment, variant)
    return built
