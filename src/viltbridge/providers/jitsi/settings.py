"""The settings of a Jitsi connection: one JaaS app, or one self-hosted Jitsi with token authentication
(docs/providers.md §6.2). The credentials are signing keys, not API keys: see `tokens.py` for the JWTs they sign.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from viltbridge.providers.settings import parse_settings

__all__ = ["JAAS_URL", "JitsiSettings", "load_rsa_private_key"]

JAAS_URL = "https://8x8.vc"
APP_ID = re.compile(r"vpaas-magic-cookie-[0-9a-f]{32}")
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MIN_RSA_BITS = 2048
MIN_APP_SECRET = 32  # HS256 keys shorter than the hash are weak (and PyJWT warns about them)

Deployment = Literal["jaas", "self_hosted"]


def load_rsa_private_key(pem: str) -> RSAPrivateKey:
    """The RSA private key in `pem`; ValueError saying what is wrong (never quoting the key)."""
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise ValueError("is encrypted with a passphrase; give the unencrypted PEM (e.g. `openssl pkey -in key.pem`)"
                         ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("is not a PEM private key: paste the whole block from -----BEGIN PRIVATE KEY----- (or "
                         "BEGIN RSA PRIVATE KEY) to its END line, of the key whose public key is in the JaaS "
                         "console") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("is not an RSA key; JaaS signs with RS256 and needs an RSA key of at least "
                         f"{MIN_RSA_BITS} bits")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"is an RSA key of {key.key_size} bits; JaaS needs at least {MIN_RSA_BITS}")
    return key


def _deployment(info: ValidationInfo) -> str | None:
    value = info.data.get("deployment")
    return str(value) if value is not None else None


V = TypeVar("V")

_SIGNED_WITH = {"jaas": ("JaaS", "private_key"), "self_hosted": ("self-hosted", "app_secret")}


def _only_for(deployment: str, value: V | None, info: ValidationInfo, missing: str) -> V | None:
    """A setting of one deployment kind (the caller has checked the deployment is a known one): refused for the
    other kind, required for its own (`missing` says what it is). None when the other kind needs nothing here."""
    given = _deployment(info)
    if given != deployment:
        if value is not None:
            name, key = _SIGNED_WITH[str(given)]
            raise ValueError(f"is only used with deployment {deployment} ({name} tokens are signed with {key})")
        return None
    if value is None:
        raise ValueError(f"missing (required for deployment {deployment}: {missing})")
    return value


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, SecretStr) and not value.get_secret_value().strip():
        return None
    return value


class JitsiSettings(BaseModel):
    """One JaaS app, or one self-hosted Jitsi with token authentication. Every problem is reported at once, each
    under its setting's name; secrets stay `SecretStr` (shown as ********** in reprs and logs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    deployment: Deployment
    """jaas: 8x8's Jitsi as a Service; self_hosted: your own Jitsi with token authentication."""
    app_id: str | None = Field(default=None, validate_default=True)
    """JaaS: the AppID (vpaas-magic-cookie-<32 hex>). Self-hosted: prosody's app_id."""
    key_id: str | None = Field(default=None, validate_default=True)
    """JaaS only: the API key's id, as the JaaS console shows it."""
    # A PEM block spans lines: the console asks for it in a text area.
    private_key: SecretStr | None = Field(default=None, validate_default=True, json_schema_extra={"multiline": True})
    """JaaS only: the API key's PEM RSA private key (at least 2048 bits)."""
    app_secret: SecretStr | None = Field(default=None, validate_default=True)  # self-hosted: prosody's app_secret
    """Self-hosted only: prosody's app_secret."""
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    """The signing secret of the webhook endpoint. Required for JaaS; optional self-hosted (without it attendance
    is launch-only)."""
    base_url: str | None = Field(default=None, validate_default=True)  # JaaS: https://8x8.vc; self-hosted: required
    """JaaS: https://8x8.vc (the default); self-hosted: the server's URL (required)."""
    domain: str | None = Field(default=None, validate_default=True)  # self-hosted: JWT `sub`; default base_url host
    """Self-hosted: the XMPP domain (JWT sub); by default the host of base_url."""

    @field_validator("app_id", "key_id", "private_key", "app_secret", "webhook_secret", "base_url", "domain",
                     mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        deployment = _deployment(info)
        value = value.strip() if value else None
        if deployment == "jaas":
            if value is None:
                raise ValueError("missing (required for deployment jaas: the AppID from the JaaS console, "
                                 "vpaas-magic-cookie-<32 hex digits>)")
            if not APP_ID.fullmatch(value):
                raise ValueError("must be the JaaS AppID: vpaas-magic-cookie- followed by 32 hex digits (JaaS "
                                 "console, API keys page)")
        elif deployment == "self_hosted" and value is None:
            raise ValueError("missing (required for deployment self_hosted: the app_id prosody's token "
                             "authentication is configured with)")
        return value

    @field_validator("key_id")
    @classmethod
    def _key_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if _deployment(info) not in _SIGNED_WITH:
            return value
        value = _only_for("jaas", value, info, "the id of the API key, from the JaaS console")
        if value is None:
            return None
        value = value.strip()
        prefix, slash, rest = value.rpartition("/")
        if slash:  # the console shows `<AppID>/<keyId>`; either form is accepted
            app_id = info.data.get("app_id")
            if app_id and prefix != app_id:
                raise ValueError("names another AppID than app_id; copy the key id of this app's API key")
            value = rest
        if not KEY_ID.fullmatch(value):
            raise ValueError("must be the API key id from the JaaS console (letters, digits, '.', '_', '-')")
        return value

    @field_validator("private_key")
    @classmethod
    def _private_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if _deployment(info) not in _SIGNED_WITH:
            return value
        value = _only_for("jaas", value, info, "the PEM RSA private key whose public key is uploaded in the JaaS "
                                               "console")
        if value is None:
            return None
        # A PEM pasted through an environment variable or a one-line form often arrives with literal "\n".
        pem = value.get_secret_value().strip().replace("\\n", "\n")
        load_rsa_private_key(pem)
        return SecretStr(pem)

    @field_validator("app_secret")
    @classmethod
    def _app_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if _deployment(info) not in _SIGNED_WITH:
            return value
        value = _only_for("self_hosted", value, info, "prosody's app_secret")
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        if len(secret) < MIN_APP_SECRET:
            raise ValueError(f"must be at least {MIN_APP_SECRET} characters (set a long random one in prosody, e.g. "
                             "from `openssl rand -hex 32`)")
        return SecretStr(secret)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            if _deployment(info) == "jaas":
                raise ValueError("missing (required for deployment jaas: the signing secret of the webhook "
                                 "endpoint, shown in the JaaS console's Webhooks page; attendance comes only from "
                                 "webhooks)")
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        deployment = _deployment(info)
        if value is None:
            if deployment == "self_hosted":
                raise ValueError("missing (required for deployment self_hosted: the Jitsi web address, e.g. "
                                 "https://meet.example.org)")
            return JAAS_URL if deployment == "jaas" else None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL without query, e.g. https://meet.example.org")
        return value.strip().rstrip("/")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None, info: ValidationInfo) -> str | None:
        deployment = _deployment(info)
        if deployment == "jaas":
            if value is not None:
                raise ValueError("is only used with deployment self_hosted (JaaS tokens name the AppID)")
            return None
        if value is None:
            base = info.data.get("base_url")
            return urlsplit(base).hostname if base else None
        value = value.strip().lower()
        if value != "*" and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", value):
            raise ValueError("must be the XMPP domain of the Jitsi server (e.g. meet.example.org) or *")
        return value

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> JitsiSettings:
        return parse_settings("jitsi", cls, raw)

    # --- derived -------------------------------------------------------------------------------------------------

    @property
    def jaas(self) -> bool:
        return self.deployment == "jaas"

    @property
    def url(self) -> str:
        assert self.base_url is not None  # set (or defaulted) by validation
        return self.base_url

    @property
    def kid(self) -> str | None:
        return f"{self.app_id}/{self.key_id}" if self.jaas else None

    @property
    def webhooks(self) -> bool:
        return self.webhook_secret is not None

    def id_secret(self) -> str:
        """The key for ids derived from LMS data (room suffixes, `context.user.id`): from the signing secret, so
        they are stable for one app and cannot be computed by anyone without it. Rotating the signing key changes
        the ids of rooms created and people launched afterwards; rooms already created keep their names."""
        material = self.private_key if self.jaas else self.app_secret
        assert material is not None
        return hashlib.sha256(b"viltbridge/jitsi/ids\0" + material.get_secret_value().encode()).hexdigest()

    def room_url(self, room: str) -> str:
        """Where a room is: `{base}/{AppID}/{room}` (JaaS) or `{base}/{room}` (self-hosted)."""
        path = f"{self.app_id}/{quote(room)}" if self.jaas else quote(room)
        return f"{self.url}/{path}"
