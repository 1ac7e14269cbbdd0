"""The per-person JWT that makes a Jitsi link personal (docs/providers.md §6.2); `JitsiSettings` is in settings.py.

Jitsi has no meeting API: a room exists while someone is in it, and who may enter (and as what) is decided by the
JWT in the link. So the credentials (settings.py) are signing keys, not API keys:

- JaaS (8x8.vc): RS256 with the private key whose public key was uploaded in the JaaS console; header
  `kid` = `<AppID>/<keyId>`; claims `aud: "jitsi"`, `iss: "chat"`, `sub: <AppID>`, `room`, `nbf`, `exp`, `context`.
- Self-hosted Jitsi (prosody `token` authentication): HS256 with the `app_secret` prosody is configured with;
  `iss` and `aud` = its `app_id`, `sub` = the XMPP domain, same `room`/`nbf`/`exp`/`context` [M].

`context.user.moderator` ("true"/"false") makes instructors moderators; `context.features` (recording,
livestreaming, ...) are only ever granted to moderators, as JaaS requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from viltbridge.providers.jitsi.settings import JitsiSettings, load_rsa_private_key

__all__ = ["FEATURES", "Signer", "TokenUser"]

# Features a JaaS token may grant (§6.2); each is "true" only for moderators whose meeting allows it.
FEATURES = ("livestreaming", "recording", "transcription", "outbound-call", "sip-outbound-call", "inbound-call",
            "sip-inbound-call", "file-upload", "list-visitors")
@dataclass(frozen=True)
class TokenUser:
    """Who the token is for: `context.user`."""

    id: str
    name: str
    email: str
    moderator: bool


def _flag(value: bool) -> str:
    return "true" if value else "false"


class Signer:
    """Mints the per-person JWTs of one JaaS app or self-hosted server; the private key is parsed once."""

    def __init__(self, settings: JitsiSettings) -> None:
        self.settings = settings
        self._key: RSAPrivateKey | str
        if settings.jaas:
            assert settings.private_key is not None
            self._key = load_rsa_private_key(settings.private_key.get_secret_value())
        else:
            assert settings.app_secret is not None
            self._key = settings.app_secret.get_secret_value()

    def __repr__(self) -> str:
        return f"Signer({self.settings.deployment}, app_id={self.settings.app_id!r})"

    def claims(self, room: str, user: TokenUser, *, not_before: datetime, expires: datetime,
               features: Mapping[str, bool] | None = None) -> dict[str, Any]:
        settings = self.settings
        granted = {name: _flag(user.moderator and bool((features or {}).get(name))) for name in FEATURES}
        context = {"user": {"id": user.id, "name": user.name, "email": user.email,
                            "moderator": _flag(user.moderator), "hidden-from-recorder": "false"},
                   "features": granted}
        if settings.jaas:
            head = {"aud": "jitsi", "iss": "chat", "sub": settings.app_id}
        else:
            head = {"aud": settings.app_id, "iss": settings.app_id, "sub": settings.domain}
        return {**head, "room": room, "nbf": int(not_before.timestamp()), "exp": int(expires.timestamp()),
                "context": context}

    def mint(self, room: str, user: TokenUser, *, not_before: datetime, expires: datetime,
             features: Mapping[str, bool] | None = None) -> str:
        claims = self.claims(room, user, not_before=not_before, expires=expires, features=features)
        if self.settings.jaas:
            return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.settings.kid, "typ": "JWT"})
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": "JWT"})
