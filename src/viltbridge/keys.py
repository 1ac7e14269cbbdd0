"""Opening the server's keyring for a configured deployment."""

from __future__ import annotations

from viltbridge.config import Settings
from viltbridge.crypto import Keyring, load_keyring
from viltbridge.store import repository


def open_keyring(settings: Settings) -> Keyring:
    """The keyring; a key file is created only while the database holds no encrypted data yet."""
    if settings.secret_key or settings.key_file.exists():
        return load_keyring(settings.secret_key, settings.key_file)
    return load_keyring(None, settings.key_file, may_create=not repository.has_connections(settings.database_url))
