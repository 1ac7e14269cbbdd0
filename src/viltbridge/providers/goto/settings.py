"""The settings of a GoTo Training connection: one organizer, reached through an OAuth client it authorised once
(validated with one message naming every problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["GotoSettings"]

# Where an admin finds the two keys, now that the token answer does not carry them (GoTo Admin API `/me`).
KEYS_WHERE = ("call GET https://api.getgo.com/admin/rest/v1/me with the organizer's access token: organizer_key is "
              "the `key` of that answer and account_key the `key` of the account in its `accounts` list")


class GotoSettings(BaseModel):
    """One GoTo Training organizer, reached through an OAuth client (developer.goto.com) that the organizer
    authorised once with the authorization-code flow; its refresh token is what viltbridge keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    client_id: str
    """The OAuth client's id, from its page on developer.goto.com."""
    client_secret: SecretStr
    """The OAuth client's secret, from its page on developer.goto.com."""
    refresh_token: SecretStr
    """From the token answer of the organizer's one-time authorisation (authorization-code flow)."""
    # Both keys required: GoTo's current token answer no longer carries them (only access_token, expires_in, scope,
    # principal, refresh_token, token_type), and without the account co-organizers would silently vanish.
    # Empty defaults only so that a missing key gets the message saying where to find it (`_is_key`).
    organizer_key: str = Field(default="", validate_default=True)
    """The organizer whose trainings these are (GoTo's numeric key)."""
    account_key: str = Field(default="", validate_default=True)
    """The organizer's account, whose other organizers can be co-organizers (GoTo's numeric key)."""
    api_base_url: str = "https://api.getgo.com/G2T/rest"
    """GoTo Training's API."""
    admin_api_url: str = "https://api.getgo.com/admin/rest/v1"
    """GoTo's Admin API: its user listing replaces the deprecated G2T organizer listing where the authorising
    organizer is an account admin."""
    token_url: str = "https://authentication.logmeininc.com/oauth/token"  # noqa: S105 - a URL, not a secret
    """Where OAuth tokens are renewed."""
    registration_url: str = "https://attendee.gototraining.com/r/{trainingKey}"
    """A training's registration page; {trainingKey} is replaced (GoTo's API returns no URL)."""
    time_zone: str = "UTC"
    """The zone of a training whose session carries none GoTo accepts, e.g. Europe/Paris."""
    notify_on_reschedule: bool = False
    """Whether GoTo emails registrants and trainers when a training's times change. Off: the LMS informs people."""
    rate_limit_per_second: int = 10  # GoTo's documented default per API (§5.4)
    """Calls per second viltbridge allows itself (GoTo's documented default is 10)."""

    @field_validator("client_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty; copy it from the OAuth client's page on developer.goto.com")
        return value.strip()

    @field_validator("client_secret", "refresh_token")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; copy it from the OAuth client's page (client_secret) or from the "
                             "token answer of the organizer's authorisation (refresh_token)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("organizer_key", "account_key")
    @classmethod
    def _is_key(cls, value: object) -> str:
        value = str(value if value is not None else "").strip()
        if not value:
            raise ValueError(f"missing (required): {KEYS_WHERE}")
        if not value.isdigit():
            raise ValueError(f"must be GoTo's numeric key: {KEYS_WHERE}")
        return value

    @field_validator("api_base_url", "token_url", "admin_api_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://api.getgo.com/G2T/rest")
        return value.strip().rstrip("/")

    @field_validator("registration_url")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or "{trainingKey}" not in value:
            raise ValueError("must be an http(s) URL containing {trainingKey}, e.g. "
                             "https://attendee.gototraining.com/r/{trainingKey}")
        return value.strip()

    @field_validator("time_zone")
    @classmethod
    def _is_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be a time zone id such as Europe/Paris or America/New_York") from None
        return value.strip()

    @field_validator("rate_limit_per_second")
    @classmethod
    def _positive(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("must be between 1 and 100 (GoTo's default is 10)")
        return value

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> GotoSettings:
        return parse_settings("goto", cls, raw)
