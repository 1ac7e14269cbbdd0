"""The settings of a Webex connection: one organisation, reached through an Integration or a Service App (validated
with readable messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["WebexSettings"]


class WebexSettings(BaseModel):
    """One Webex organisation, reached through an Integration or a Service App (docs/providers.md §3.1).

    Give either `refresh_token` with `client_id` and `client_secret` (tokens are refreshed as they expire; the
    recommended setup), or only `access_token` (a token that is never refreshed: fine for a trial, it expires).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    client_id: str | None = None
    """The Integration's or Service App's client id (developer.webex.com); needed with refresh_token."""
    client_secret: SecretStr | None = None
    """The Integration's or Service App's client secret; needed with refresh_token."""
    refresh_token: SecretStr | None = None
    """Tokens are refreshed as they expire: the recommended setup."""
    access_token: SecretStr | None = None
    """Instead of refresh_token: a token that is never refreshed (fine for a trial; it expires)."""
    webhook_secret: SecretStr | None = None
    """The secret set when the webhooks were created: deliveries are signed with it."""
    api_base_url: str = "https://webexapis.com/v1"
    """Webex's API."""
    token_url: str = "https://webexapis.com/v1/access_token"  # noqa: S105 - a URL, not a secret
    """Where OAuth tokens are renewed."""
    act_for_hosts: bool = True
    """Schedule on behalf of hosts (every meeting call names the host): for Service Apps and admins."""
    default_host: str | None = None
    """Hosts meetings whose session names no instructor."""
    site: str | None = None
    """The Webex site classes are held on, e.g. acme.webex.com; instructors need a host role on it."""
    link_minutes: int = 60
    """How long a personal join or start link stays valid (1 to 60 minutes)."""

    @field_validator("client_id", "default_host")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty; leave it out instead")
        return value.strip() if value is not None else None

    @field_validator("site")
    @classmethod
    def _site_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # People name the site as they see it in the browser; siteUrls entries carry only the host name.
        site = value.strip().removeprefix("https://").removeprefix("http://").strip("/").lower()
        if not site or "/" in site or "#" in site or "." not in site:
            raise ValueError("must be the Webex site's name as in Control Hub (Services > Meeting > Sites), "
                             "e.g. acme.webex.com")
        return site

    @field_validator("client_secret", "refresh_token", "access_token", "webhook_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; copy it from the app's page on developer.webex.com, or leave it out")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_base_url", "token_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://webexapis.com/v1")
        return value.strip().rstrip("/")

    @field_validator("link_minutes")
    @classmethod
    def _link_minutes_in_range(cls, value: int) -> int:
        if not 1 <= value <= 60:
            raise ValueError("must be between 1 and 60 (Webex's limits for expirationMinutes)")
        return value

    @model_validator(mode="after")
    def _some_way_to_authenticate(self) -> WebexSettings:
        refreshable = self.refresh_token is not None
        if refreshable and (self.client_id is None or self.client_secret is None):
            raise ValueError("refresh_token needs client_id and client_secret too (from the Integration's or "
                             "Service App's page on developer.webex.com)")
        if not refreshable and self.access_token is None:
            raise ValueError("give refresh_token with client_id and client_secret (an Integration or a Service "
                             "App authorised by an admin), or an access_token")
        return self

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> WebexSettings:
        return parse_settings("webex", cls, raw)
