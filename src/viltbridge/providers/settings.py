"""Provider settings: one way to validate them and to say what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from viltbridge.core.errors import InvalidInput

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def _problem(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "missing":
        return "missing (required)"
    return message.removeprefix("Value error, ")


def parse_settings(provider: str, model: type[SettingsModel], raw: Mapping[str, Any]) -> SettingsModel:
    """`model` validated from `raw`, or InvalidInput naming each wrong setting and listing the known ones."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        located = [(".".join(str(p) for p in err["loc"]) or "settings", _problem(err["type"], err["msg"]))
                   for err in exc.errors()]
        problems = "; ".join(f"{where}: {problem}" for where, problem in located)
        known = ", ".join(model.model_fields)
        by_setting: dict[str, str] = {}
        for where, problem in located:  # a setting's first problem; "settings" for a rule across several
            by_setting.setdefault(where.split(".")[0], problem)
        raise InvalidInput(f"{provider} provider settings are wrong ({problems}). Known settings: {known}.",
                           fields=by_setting) from None
