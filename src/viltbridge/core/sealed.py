"""Sealed values: a JSON list, base64url-encoded, with an HMAC-SHA256 signature. One implementation for every
signed token viltbridge issues (launch links, OAuth access tokens)."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any


class MalformedSeal(ValueError):
    """Not shaped like a sealed value at all (truncated, not base64, not JSON)."""


class ForgedSeal(ValueError):
    """Well-formed, but no configured key produced its signature."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Made once: `json.dumps` with options builds a new encoder on every call, and a launch answer seals a token.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.digest(key, body.encode("ascii"), "sha256"))  # one-shot: a third of `hmac.new`'s cost


def seal(payload: list[Any], key: bytes) -> str:
    body = _b64(_COMPACT_JSON.encode(payload).encode("utf-8"))
    return f"{body}.{_signature(key, body)}"


def unseal(token: str, keys: list[bytes]) -> list[Any]:
    """The payload, if one of `keys` sealed it. Raises MalformedSeal or ForgedSeal otherwise."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or not (body.isascii() and signature.isascii()):
        raise MalformedSeal(token[:40])
    # Compare the encoded text, not decoded bytes: the decoder ignores stray characters and the unused bits of the
    # last one, so several spellings decode to the same signature. Only the one we issued is valid.
    given = signature.encode("ascii")
    if not any(hmac.compare_digest(_signature(key, body).encode("ascii"), given) for key in keys):
        raise ForgedSeal(token[:40])
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        raise MalformedSeal(token[:40]) from None
    if not isinstance(payload, list):
        raise MalformedSeal(token[:40])
    return payload
