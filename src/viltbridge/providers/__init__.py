"""Provider registry: the one place that names every provider. Adding a provider = a folder + a line here."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any

from viltbridge.core.errors import InvalidInput
from viltbridge.core.provider import Provider, SettingsSink

ProviderFactory = Callable[[Mapping[str, Any], SettingsSink | None], Provider]


def _imported_when_called(module: str, name: str) -> Callable[..., Any]:
    """`viltbridge.providers.<module>`'s `name` (dotted: `Class.method`), imported at the first call: a command that
    touches one provider, or none, does not pay for importing all seven (about half a second)."""
    def call(*args: Any) -> Any:
        target = reduce(getattr, name.split("."), importlib.import_module(f"viltbridge.providers.{module}"))
        return target(*args)

    call.__qualname__ = call.__name__ = f"{module}:{name}"
    return call


PROVIDERS: dict[str, ProviderFactory] = {
    "bbb": _imported_when_called("bbb.adapter", "BbbProvider.from_settings"),
    "goto": _imported_when_called("goto.adapter", "GotoProvider.from_settings"),
    "jitsi": _imported_when_called("jitsi.adapter", "JitsiProvider.from_settings"),
    "link": _imported_when_called("link.adapter", "LinkProvider.from_settings"),
    "teams": _imported_when_called("teams.adapter", "TeamsProvider.from_settings"),
    "webex": _imported_when_called("webex.adapter", "WebexProvider.from_settings"),
    "zoom": _imported_when_called("zoom.adapter", "ZoomProvider.from_settings"),
}


# Settings checks that build nothing (no HTTP client): for the CLI and the console, before anything is saved.
SETTINGS_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "bbb": _imported_when_called("bbb.client", "BbbSettings.from_settings"),
    "goto": _imported_when_called("goto.client", "GotoSettings.from_settings"),
    "jitsi": _imported_when_called("jitsi.tokens", "JitsiSettings.from_settings"),
    "link": _imported_when_called("link.adapter", "LinkProvider.checked_settings"),
    "teams": _imported_when_called("teams.client", "TeamsSettings.from_settings"),
    "webex": _imported_when_called("webex.client", "WebexSettings.from_settings"),
    "zoom": _imported_when_called("zoom.client", "ZoomSettings.from_settings"),
}


def check_settings(kind: str, settings: Mapping[str, Any]) -> None:
    """Raise InvalidInput saying what is wrong with `settings` for a `kind` provider."""
    check = SETTINGS_CHECKS.get(kind)
    if check is None:
        raise InvalidInput(f"Unknown provider '{kind}'; available: {', '.join(sorted(PROVIDERS))}.")
    check(settings)


def build_provider(kind: str, settings: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> Provider:
    """The adapter for a connection. `on_settings_change` stores settings the provider itself changes (a rotated
    refresh token) with the connection."""
    factory = PROVIDERS.get(kind)
    if factory is None:
        raise InvalidInput(f"Unknown provider '{kind}'; available: {', '.join(sorted(PROVIDERS))}.")
    return factory(settings, on_settings_change)
