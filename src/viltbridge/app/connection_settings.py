"""A connection's settings as a form: one field per setting of its provider's settings model (plus the vendor
options every connection has), and what a submitted form changes.

The form is drawn from the model itself (type, default, the field's docstring as help), so a provider's settings
need no template of their own. Secrets are write-only: the form says whether one is stored, never what it is, and an
empty secret field keeps the stored one. Validation stays where it was: the changes go through `connections.create`
and `connections.change`, which check the settings as a whole as the CLI does.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from viltbridge.providers.registry import provider_spec

InputKind = Literal["text", "number", "bool", "choice", "secret", "secret_text"]
SECRET_KINDS = ("secret", "secret_text")


@dataclass(frozen=True)
class SettingField:
    key: str
    kind: InputKind
    required: bool
    default: str | None  # as the form writes it; None: no default
    help: str
    choices: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        return self.kind in SECRET_KINDS


# The vendor options every connection has, stored on the connection itself rather than with the provider's settings.
OPTION_FIELDS = (
    SettingField("launch_window_minutes", "number", True, "15",
                 "How many minutes before a class starts its launch link opens the meeting (0 to 1440)."),
    SettingField("automatic_cancellation", "bool", True, "true",
                 "When the LMS cancels a session, cancel its meeting at the provider too."),
    SettingField("extended_options", "bool", True, "false",
                 "Offer the provider's extended options (per-session choices) to the LMS."),
)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stored_text(field: SettingField, value: Any) -> str:
    """A stored value as the form writes it: a yes/no setting saved as "True" or "on" by the CLI is "true"."""
    text = _as_text(value)
    if field.kind == "bool" and text.strip().lower() in (*_TRUE, *_FALSE):
        return "true" if text.strip().lower() in _TRUE else "false"
    return text


def _field(key: str, info: FieldInfo) -> SettingField:
    annotation = _without_none(info.annotation)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    kind: InputKind
    choices: tuple[str, ...] = ()
    if annotation is SecretStr:
        kind = "secret_text" if extra.get("multiline") else "secret"
    elif annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "number"
    elif get_origin(annotation) is Literal:
        kind, choices = "choice", tuple(str(choice) for choice in get_args(annotation))
    else:
        kind = "text"
    default = None if info.is_required() or info.default is None else _as_text(info.default)
    # An empty default kept only to say where to find a missing value (GoTo's keys) is no default at all.
    required = info.is_required() or default == ""
    return SettingField(key, kind, required, None if default == "" else default, info.description or "", choices)


def settings_fields(provider: str) -> list[SettingField]:
    """The fields of a `provider` connection's settings, in the model's order; InvalidInput for an unknown kind."""
    model = provider_spec(provider).settings_model()
    return [_field(key, info) for key, info in model.model_fields.items()]


def form_fields(provider: str) -> list[SettingField]:
    return [*OPTION_FIELDS, *settings_fields(provider)]


def stored_text(fields: Sequence[SettingField], stored: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """What the form shows of stored settings: the values of the fields that are not secret, and which secrets
    are set."""
    shown = {field.key: _stored_text(field, stored[field.key]) for field in fields
             if not field.secret and stored.get(field.key) is not None}
    secrets_set = {field.key for field in fields if field.secret and stored.get(field.key) not in (None, "")}
    return shown, secrets_set


def changed_pairs(fields: Sequence[SettingField], stored: Mapping[str, Any], typed: Mapping[str, str]
                  ) -> dict[str, str]:
    """The `key=value` changes a submitted form makes to `stored`, as `connections.change` takes them: a field left
    as it was changes nothing (so a default stays a default), an emptied field removes its setting, an empty secret
    keeps the stored one. A field absent from the form changes nothing."""
    pairs: dict[str, str] = {}
    for field in fields:
        if field.key not in typed:
            continue
        value = typed[field.key]
        if field.secret:
            if value.strip():
                pairs[field.key] = value
            continue
        if field.key in stored and stored[field.key] is not None:
            current = _stored_text(field, stored[field.key])
        else:
            current = field.default or ""
        if value != current and (value != "" or field.key in stored):
            pairs[field.key] = value
    return pairs


@dataclass(frozen=True)
class FieldView:
    """One field as the page draws it."""

    field: SettingField
    value: str  # what the input holds; always "" for a secret
    is_set: bool  # a secret: whether one is stored
    error: str | None


def form_view(fields: Sequence[SettingField], values: Mapping[str, str], secrets_set: set[str],
              errors: Mapping[str, str]) -> list[FieldView]:
    """The fields with what the person typed (or what is stored), never a secret's value, and each field's
    problem."""
    return [FieldView(field, "" if field.secret else values.get(field.key, field.default or ""),
                      field.key in secrets_set, errors.get(field.key)) for field in fields]
