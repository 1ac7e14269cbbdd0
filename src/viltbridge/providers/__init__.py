"""Provider registry: the one place that names every provider. Adding a provider = a folder + a line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from viltbridge.core.errors import InvalidInput
from viltbridge.core.provider import Provider, SettingsSink
from viltbridge.providers.bbb.adapter import BbbProvider
from viltbridge.providers.bbb.client import BbbSettings
from viltbridge.providers.goto.adapter import GotoProvider
from viltbridge.providers.goto.client import GotoSettings
from viltbridge.providers.jitsi.adapter import JitsiProvider
from viltbridge.providers.jitsi.tokens import JitsiSettings
from viltbridge.providers.link.adapter import LinkProvider
from viltbridge.providers.teams.adapter import TeamsProvider
from viltbridge.providers.teams.client import TeamsSettings
from viltbridge.providers.webex.adapter import WebexProvider
from viltbridge.providers.webex.client import WebexSettings
from viltbridge.providers.zoom.adapter import ZoomProvider
from viltbridge.providers.zoom.client import ZoomSettings

ProviderFactory = Callable[[Mapping[str, Any], SettingsSink | None], Provider]

PROVIDERS: dict[str, ProviderFactory] = {
    "bbb": BbbProvider.from_settings,
    "goto": GotoProvider.from_settings,
    "jitsi": JitsiProvider.from_settings,
    "link": LinkProvider.from_settings,
    "teams": TeamsProvider.from_settings,
    "webex": WebexProvider.from_settings,
    "zoom": ZoomProvider.from_settings,
}


# Settings checks that build nothing (no HTTP client): for the CLI and the console, before anything is saved.
SETTINGS_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "bbb": BbbSettings.from_settings,
    "goto": GotoSettings.from_settings,
    "jitsi": JitsiSettings.from_settings,
    "link": LinkProvider.checked_settings,
    "teams": TeamsSettings.from_settings,
    "webex": WebexSettings.from_settings,
    "zoom": ZoomSettings.from_settings,
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
