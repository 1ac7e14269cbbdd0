"""An audit entry's before and after as a list a person can read: one line per field that differs, nested records
flattened to dotted keys (`settings.region`), and secrets said to have changed without showing either value (the
log never holds them: `core.redaction` replaced them before they were stored)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from viltbridge.core.redaction import REDACTED

ABSENT = "—"
SECRET_CHANGED = f"{REDACTED} (changed)"


@dataclass(frozen=True)
class FieldChange:
    """One field of one audit entry. `secret`: the values are not known, only that the field was written."""

    field: str
    before: str
    after: str
    secret: bool = False

    @property
    def secret_note(self) -> str:
        """What a secret field's line says: the values are never shown, only what happened to it."""
        if self.after == "not set":
            return "secret removed"
        return "secret set" if self.before == "not set" else "secret changed"

    @property
    def added(self) -> bool:
        return self.before == ABSENT

    @property
    def removed(self) -> bool:
        return self.after == ABSENT


def mark_changed_secrets(before: Any, after: Any, redacted_after: Any) -> Any:
    """`redacted_after` with each secret whose value differs from `before` marked as changed: once redacted, two
    secrets look alike, so whether one changed must be noted before the values are dropped."""
    if not isinstance(after, Mapping) or not isinstance(redacted_after, Mapping):
        return redacted_after
    old = before if isinstance(before, Mapping) else {}
    return {key: SECRET_CHANGED if item == REDACTED and key in old and old[key] != after.get(key)
            else mark_changed_secrets(old.get(key), after.get(key), item)
            for key, item in redacted_after.items()}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}, "c": [{"d": 2}]}` → `{"a.b": 1, "c.0.d": 2}`; a list of plain values stays one field."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return {prefix: {}}
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list | tuple) and any(isinstance(item, Mapping | list | tuple) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "value": value}


def shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(shown(item) for item in value) if value else "(empty list)"
    if isinstance(value, Mapping):
        return "(empty)" if not value else json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[FieldChange]:
    """Every field that differs between the two records, in the order the after record names them (then those only
    the before record had). A field equal on both sides is left out: the entry is about what changed."""
    old, new = flatten(before or {}), flatten(after or {})
    fields = [*new, *(field for field in old if field not in new)]
    found = []
    for field in fields:
        was, now = old.get(field, ABSENT), new.get(field, ABSENT)
        if now == SECRET_CHANGED:
            found.append(FieldChange(field, "set", "changed", secret=True))
            continue
        if REDACTED in (was, now):
            if was != now:  # both redacted and not marked: the same secret, kept
                found.append(FieldChange(field, "not set" if was == ABSENT else "set",
                                         "not set" if now == ABSENT else "set", secret=True))
            continue
        if field in old and field in new and was == now:
            continue
        found.append(FieldChange(field, ABSENT if field not in old else shown(was),
                                 ABSENT if field not in new else shown(now)))
    return found
