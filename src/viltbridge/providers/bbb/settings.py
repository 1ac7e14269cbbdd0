"""The settings of a BigBlueButton connection: one BBB server (or Scalelite) and its shared secret, validated
with readable messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["Algorithm", "BbbSettings"]

Algorithm = Literal["sha1", "sha256", "sha384", "sha512"]


class BbbSettings(BaseModel):
    """One BigBlueButton server: its URL and the shared secret (`bbb-conf --secret`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    server_url: str  # e.g. https://bbb.example.org/bigbluebutton/
    """The BBB server's (or Scalelite's) URL, e.g. https://bbb.example.org/bigbluebutton/."""
    shared_secret: SecretStr
    """The server's shared secret: run `bbb-conf --secret` on the BBB server."""
    checksum_algorithm: Algorithm = "sha256"
    """How API calls are signed; the server's default is sha256 (older servers: sha1)."""
    analytics_callback_url: str | None = None
    """viltbridge's own POST /webhooks/<connection> URL: BBB posts each meeting's learning analytics there when it
    ends. Without it there is no attendance from BBB (launches are still recorded)."""

    @field_validator("server_url", "analytics_callback_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://bbb.example.org/bigbluebutton/")
        return value.strip()

    @field_validator("shared_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 8:
            raise ValueError("must be the server's shared secret (run `bbb-conf --secret` on the BBB server)")
        return SecretStr(value.get_secret_value().strip())

    @property
    def api_url(self) -> str:
        """`.../bigbluebutton/api/`, whether the admin pasted the server root, `/bigbluebutton/` or `/api`."""
        base = self.server_url.rstrip("/")
        if base.endswith("/api"):
            return base + "/"
        if not base.endswith("/bigbluebutton"):
            base += "/bigbluebutton"
        return base + "/api/"

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> BbbSettings:
        return parse_settings("bbb", cls, raw)
