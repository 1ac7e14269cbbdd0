"""The settings of a Zoom connection: one account, reached through a Server-to-Server OAuth app (validated with
readable messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["ZoomSettings"]


class ZoomSettings(BaseModel):
    """One Zoom account, reached through a Server-to-Server OAuth app created in Zoom Marketplace."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    account_id: str
    """From the Server-to-Server OAuth app's App Credentials page in Zoom Marketplace."""
    client_id: str
    """From the app's App Credentials page in Zoom Marketplace."""
    client_secret: SecretStr
    """From the app's App Credentials page in Zoom Marketplace."""
    webhook_secret_token: SecretStr
    """The app's webhook Secret Token (Feature page): deliveries are signed with it."""
    api_base_url: str = "https://api.zoom.us/v2"
    """Zoom's API."""
    oauth_token_url: str = "https://zoom.us/oauth/token"  # noqa: S105 - a URL, not a secret
    """Where OAuth tokens are fetched."""
    plan: Literal["free", "pro", "business"] = "pro"  # sets the client-side rate limits (PLAN_LIMITS)
    """The account's plan: sets the rate limits viltbridge keeps to."""
    host_policy: Literal["existing", "create"] = "existing"
    """existing: hosts must already be licensed users on the account; create: missing hosts are created."""
    default_host: str | None = None
    """Hosts meetings whose session names no instructor."""
    batch_registration: bool = True
    """Register learners who launch at the same moment in batches of up to 30 (one call)."""
    learner_links: Literal["registrant", "name_tag"] = "registrant"
    """registrant: each learner gets a personal registrant link (needs a paid plan; the strongest identity);
    name_tag: the meeting link with a display-name tag, no Zoom call on a click (identity holds only while they
    keep the tag in their name)."""
    deactivated_hosts: Literal["keep", "deactivate"] = "keep"
    """When the LMS sets an instructor inactive: keep their Zoom user, or deactivate it at Zoom too (reactivated
    when the LMS sets them active again)."""

    @field_validator("account_id", "client_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty; copy it from the app's App Credentials page in Zoom Marketplace")
        return value

    @field_validator("client_secret", "webhook_secret_token")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; copy it from the app's pages in Zoom Marketplace")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_base_url", "oauth_token_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://api.zoom.us/v2")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _registration_needs_a_paid_plan(self) -> ZoomSettings:
        if self.plan == "free" and self.learner_links == "registrant":
            raise ValueError("learner_links=registrant needs meeting registration, which Zoom offers only on paid "
                             "plans; set learner_links=name_tag, or plan=pro if the account is paid")
        return self

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> ZoomSettings:
        return parse_settings("zoom", cls, raw)
