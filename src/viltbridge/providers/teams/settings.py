"""The settings of a Microsoft Teams connection: one Entra (Azure AD) app registration in one tenant, validated with
readable messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["TeamsSettings"]


class TeamsSettings(BaseModel):
    """One app registration in Microsoft Entra ID with the application permissions OnlineMeetings.ReadWrite.All,
    OnlineMeetingArtifact.Read.All and User.Read.All (admin-consented), plus a Teams application access policy."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    tenant_id: str
    """The Microsoft Entra tenant, from the app registration's Overview page."""
    client_id: str
    """The app registration's Application (client) ID."""
    client_secret: SecretStr
    """A client secret of the app registration (Certificates & secrets)."""
    authority_url: str = "https://login.microsoftonline.com"
    """Microsoft's sign-in authority."""
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    """Microsoft Graph's API."""
    access_policy_name: str = "viltbridge"
    """The name of the Teams application access policy; used only in the instructions shown when Graph refuses for
    lack of one."""
    calendar_events: bool = False
    """Off: standalone online meetings with no invitations (the LMS sends those). On: Outlook calendar events on
    the instructor's calendar, which invite co-instructors (needs Calendars.ReadWrite)."""

    @field_validator("tenant_id", "client_id", "access_policy_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty; copy it from the app registration's Overview page in Microsoft "
                             "Entra admin center")
        return value

    @field_validator("client_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; create one under the app registration's Certificates & secrets")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("authority_url", "graph_base_url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://graph.microsoft.com/v1.0")
        return value.strip().rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.authority_url}/{quote(self.tenant_id, safe='')}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        """`https://graph.microsoft.com/.default`: every application permission the admin consented to."""
        parts = urlsplit(self.graph_base_url)
        return f"{parts.scheme}://{parts.netloc}/.default"

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> TeamsSettings:
        return parse_settings("teams", cls, raw)
