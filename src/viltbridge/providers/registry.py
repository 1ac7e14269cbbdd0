"""The provider registry: one `ProviderSpec` per kind, the only place that names every provider.

Adding a provider is a folder shaped like the others and one entry here. The adapter and its settings model are
imported at their first use: a command that touches one provider, or none, does not pay for importing all of
them (about half a second)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from pydantic import BaseModel

from viltbridge.core.errors import InvalidInput
from viltbridge.core.provider import Provider, SettingsSink
from viltbridge.providers.settings import parse_settings


class ProviderAdapter(Protocol):
    """What the registry asks of an adapter class: to be built from a connection's stored settings."""

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> Provider: ...


def _imported(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ProviderSpec:
    """One kind of provider: its name for people, where its adapter and settings model live."""

    kind: str
    display_name: str
    adapter: str  # "module:Class", imported at the first use
    settings: str  # "module:Model", a pydantic model of the connection's settings
    # The setting that verifies the provider's webhook deliveries, for a provider that sends them (doctor checks it
    # is set).
    webhook_secret: str | None = None

    def adapter_class(self) -> type[ProviderAdapter]:
        return cast("type[ProviderAdapter]", _imported(self.adapter))

    def settings_model(self) -> type[BaseModel]:
        return cast("type[BaseModel]", _imported(self.settings))

    def check_settings(self, raw: Mapping[str, Any]) -> BaseModel:
        """The settings validated without building anything (no HTTP client): for the CLI and the console, before
        anything is saved. InvalidInput says what is wrong."""
        return parse_settings(self.kind, self.settings_model(), raw)

    def build(self, settings: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> Provider:
        """The adapter for a connection. `on_settings_change` stores settings the provider itself changes (a rotated
        refresh token) with the connection."""
        return self.adapter_class().from_settings(settings, on_settings_change)


def _spec(kind: str, display_name: str, adapter: str, settings: str, webhook_secret: str | None = None) -> ProviderSpec:
    return ProviderSpec(kind, display_name, f"viltbridge.providers.{kind}.{adapter}",
                        f"viltbridge.providers.{kind}.{settings}", webhook_secret)


PROVIDERS: dict[str, ProviderSpec] = {spec.kind: spec for spec in (
    _spec("bbb", "BigBlueButton", "adapter:BbbProvider", "settings:BbbSettings", "shared_secret"),
    _spec("goto", "GoTo Training", "adapter:GotoProvider", "settings:GotoSettings"),
    _spec("jitsi", "Jitsi (JaaS or self-hosted)", "adapter:JitsiProvider", "settings:JitsiSettings",
          "webhook_secret"),
    _spec("link", "Meeting link", "adapter:LinkProvider", "settings:LinkSettings"),
    _spec("teams", "Microsoft Teams", "adapter:TeamsProvider", "settings:TeamsSettings"),
    _spec("webex", "Webex", "adapter:WebexProvider", "settings:WebexSettings", "webhook_secret"),
    _spec("zoom", "Zoom", "adapter:ZoomProvider", "settings:ZoomSettings", "webhook_secret_token"),
)}


def provider_spec(kind: str) -> ProviderSpec:
    """The spec of `kind`, or InvalidInput listing the kinds there are."""
    spec = PROVIDERS.get(kind)
    if spec is None:
        raise InvalidInput(f"Unknown provider '{kind}'; available: {', '.join(sorted(PROVIDERS))}.")
    return spec


def check_settings(kind: str, settings: Mapping[str, Any]) -> None:
    """Raise InvalidInput saying what is wrong with `settings` for a `kind` provider."""
    provider_spec(kind).check_settings(settings)


def build_provider(kind: str, settings: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> Provider:
    """The adapter for a connection of `kind` (see `ProviderSpec.build`)."""
    return provider_spec(kind).build(settings, on_settings_change)
