"""Secrets at rest (MultiFernet), LMS credential digests, and the server's signing keys.

LMS secrets are generated with 32 random bytes, so a salted HMAC-SHA256 digest protects them as well as a slow
hash would, at a cost per request that does not cap throughput (argon2 would: ~10 req/s per core, see design.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from viltbridge.core.sealed import seal, unseal

MIN_CHOSEN_SECRET_LENGTH = 16


class KeyringError(Exception):
    """The configured secret key cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Keyring:
    """All server keys, newest first. Encrypts with the newest; decrypts and verifies with any."""

    fernet_keys: tuple[bytes, ...]

    @cached_property
    def fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.fernet_keys])

    def derived(self, purpose: str) -> list[bytes]:
        """Per-purpose HMAC keys (launch links, OAuth tokens), one per Fernet key, so rotation keeps working."""
        return [hmac.new(key, purpose.encode(), hashlib.sha256).digest() for key in self.fernet_keys]

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self.fernet.encrypt(json.dumps(value, sort_keys=True).encode("utf-8")).decode("ascii")

    def encrypt_text(self, value: str) -> str:
        return self.fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt_text(self, token: str) -> str:
        try:
            return self.fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise KeyringError(
                "A stored link cannot be decrypted with the configured keys. Put the key it was written with back "
                "into VILTBRIDGE_SECRET_KEY (comma-separated, newest first)."
            ) from None

    def decrypt_json(self, token: str) -> dict[str, Any]:
        return dict(self._decrypted(token))

    @lru_cache(maxsize=1024)  # noqa: B019 - keyrings live as long as the process; a ciphertext never changes
    def _decrypted(self, token: str) -> dict[str, Any]:
        try:
            decoded: dict[str, Any] = json.loads(self.fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            raise KeyringError(
                "Stored provider settings cannot be decrypted with the configured keys. Put the key they were "
                "written with back into VILTBRIDGE_SECRET_KEY (comma-separated, newest first)."
            ) from None
        return decoded


def load_keyring(secret_key: str | None, key_file: Path, may_create: bool = True) -> Keyring:
    """Keys from VILTBRIDGE_SECRET_KEY, else from the key file, created (mode 0600) on first run.

    `may_create=False` when data encrypted with some key exists already: a new key could not read it, so a missing
    key file is an error to fix, not something to paper over.
    """
    if secret_key:
        raw_keys = [part.strip() for part in secret_key.split(",") if part.strip()]
    elif key_file.exists():
        raw_keys = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
    elif not may_create:
        raise KeyringError(
            f"The key file {key_file} is missing, but the database holds connections whose settings were encrypted "
            "with a key. Restore the key file (or set VILTBRIDGE_SECRET_KEY to that key); a new key could not "
            "read them."
        )
    else:
        raw_keys = [_create_key_file(key_file)]
    keys: list[bytes] = []
    for raw in raw_keys:
        try:
            Fernet(raw.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise KeyringError(
                "VILTBRIDGE_SECRET_KEY (or the key file) holds a value that is not a Fernet key. Generate one with "
                "`viltbridge keygen` and list keys comma-separated, newest first."
            ) from None
        keys.append(raw.encode("ascii"))
    if not keys:
        raise KeyringError("No secret key configured; set VILTBRIDGE_SECRET_KEY or remove the empty key file.")
    return Keyring(tuple(keys))


def _create_key_file(key_file: Path) -> str:
    key = Fernet.generate_key().decode("ascii")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago: use theirs
        return key_file.read_text().strip().splitlines()[0]
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def new_secret() -> str:
    """A high-entropy LMS secret (256 bits), URL-safe."""
    return secrets.token_urlsafe(32)


def new_salt() -> str:
    return secrets.token_hex(16)


def secret_digest(secret: str, salt: str) -> str:
    return hmac.digest(salt.encode("ascii"), secret.encode("utf-8"), "sha256").hex()


def secret_matches(secret: str, salt: str, digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret, salt), digest)


def secret_fingerprint(salt: str) -> str:
    """Changes whenever the LMS secret is rotated (a new salt comes with it), so tokens minted before die."""
    return hashlib.sha256(salt.encode("ascii")).hexdigest()[:16]


def sign_access_token(connection_id: int, fingerprint: str, expires_at: int, keys: list[bytes]) -> str:
    """A stateless OAuth bearer token; any replica sharing the keys can verify it."""
    return "vbat." + seal([connection_id, fingerprint, expires_at], keys[0])


def verify_access_token(token: str, keys: list[bytes], now: int) -> tuple[int, str] | None:
    """(connection id, secret fingerprint) of a valid, unexpired token; None otherwise."""
    prefix, _, sealed = token.partition(".")
    if prefix != "vbat":
        return None
    try:
        connection_id, fingerprint, expires_at = unseal(sealed, keys)
    except ValueError:  # malformed, forged, or the wrong number of fields
        return None
    if not isinstance(connection_id, int) or not isinstance(expires_at, int) or expires_at < now:
        return None
    return (connection_id, str(fingerprint))


# --- console passwords: chosen by people, so a slow hash (argon2id, the library's tuned defaults) ---------------

_PASSWORDS = PasswordHasher()
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _PASSWORDS.hash(password)


def password_matches(password: str, hashed: str) -> bool:
    """Constant-time within argon2; False for a wrong password or a malformed hash."""
    try:
        return _PASSWORDS.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    return _PASSWORDS.hash(secrets.token_urlsafe(16))


def __getattr__(name: str) -> str:
    """`UNKNOWN_USER_HASH`, verified against when the email is unknown, so a sign-in takes as long whether or not the
    account exists. Made on first use: an argon2 hash takes about a third of a second, which every process importing
    this module (each CLI command) would otherwise pay."""
    if name == "UNKNOWN_USER_HASH":
        return _unknown_user_hash()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
