"""Names providers see, made the same way everywhere: readable slugs for rooms, and the personal id a per-person
link carries (the id the provider reports the person by, which attendance matches as `personal_id`)."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata


def slug(text: str, limit: int = 40) -> str:
    """Lower-case ASCII letters and digits joined by '-', at most `limit` characters ('' for no such letters)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-").lower()[:limit].strip("-")


def personal_id_for(email: str, secret: str) -> str:
    """A person's id at a provider that takes whatever id we give (BBB's join userID, a JaaS token's user id):
    stable per LMS email in any case, not the email itself (providers show ids to moderators and in dashboards),
    and keyed with a connection secret so it cannot be computed from the email alone."""
    digest = hmac.new(secret.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"vb-{digest[:32]}"
