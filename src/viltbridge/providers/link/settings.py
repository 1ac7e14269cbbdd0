"""The settings of a `link` connection: the room URL template and how rooms are named."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["DEFAULT_TEMPLATE", "LinkSettings"]

DEFAULT_TEMPLATE = "https://meet.jit.si/{room}"


class LinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    room_url_template: str = DEFAULT_TEMPLATE
    """The meeting room's URL; {room} is replaced by the room's name."""
    room_prefix: str = "vb"
    """Put before every room name (letters, digits and '-', at most 20 characters)."""
    pass_display_name: bool = True
    """Add #userInfo.displayName=<LMS email> to the URL: Jitsi Meet shows people under their LMS email. Other
    servers ignore it."""

    @field_validator("room_url_template")
    @classmethod
    def _template_is_url_with_room(cls, value: str) -> str:
        parts = urlsplit(value.replace("{room}", "room"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL, e.g. https://meet.example.org/{room}")
        if "{room}" not in value:
            raise ValueError("must contain {room} where the room name goes, e.g. https://meet.example.org/{room}")
        return value

    @field_validator("room_prefix")
    @classmethod
    def _prefix_is_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]{0,20}", value):
            raise ValueError("may hold only letters, digits and '-', at most 20 characters")
        return value
