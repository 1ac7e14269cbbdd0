"""Wire models: requests (keys accepted case-insensitively, unknown keys ignored) and exact response envelopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse

from viltbridge.core import json_text


class CaseInsensitiveModel(BaseModel):
    """`Title`, `title` and `TITLE` are the same field; unknown keys are ignored (contract §3)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _match_keys_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        by_lower = {name.lower(): name for name in cls.model_fields}
        matched: dict[str, Any] = {}
        for key, value in data.items():
            field_name = by_lower.get(str(key).lower())
            if field_name is not None and field_name not in matched:
                matched[field_name] = value
        return matched

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_text_no_database_can_store(cls, value: Any) -> Any:
        # NUL is refused with the other control characters, where each text field is read.
        if json_text.unstorable_character(value, nul=False) == json_text.LONE_SURROGATE:
            raise PydanticCustomError("invalid_unicode", "contains an unpaired UTF-16 surrogate")
        return value


class TimeZoneIn(CaseInsensitiveModel):
    # Strict: a JSON `true` must not slip through as the number 1.
    UTCOffset: StrictStr | StrictInt | StrictFloat = Field(
        description="Offset from UTC, e.g. -05:00, -0500, -5, UTC-05:00, GMT+5:30"
    )


class ExtendedOptionChoice(CaseInsensitiveModel):
    Id: str
    IsChecked: bool | None = None
    Value: Any = None


class SessionRequest(CaseInsensitiveModel):
    SessionId: str = Field(description="Cornerstone's id for this session (one part of a multi-part session)")
    CreatorEmail: str = Field(description="Who created the session in the LMS (not the instructor)")
    Title: str
    Description: str | None = None
    DateBegin: str = Field(description="Start, UTC, YYYY-MM-DDTHH:MM:SS")
    DateEnd: str = Field(description="End, UTC, YYYY-MM-DDTHH:MM:SS")
    TimeZone: TimeZoneIn
    InstructorEmails: str | list[str] | None = Field(
        default=None, description="Instructors, first = host; a JSON array or a string separated by , ; or spaces"
    )
    LoId: str | None = Field(default=None, description="Learning object id; parts sharing it form one session")
    ExtendedOptions: list[ExtendedOptionChoice] | None = None


class SessionUpdateRequest(SessionRequest):
    SessionId: str | None = Field(default=None, description="If sent, must equal the SessionId in the URL")  # type: ignore[assignment]


class AddInstructorRequest(CaseInsensitiveModel):
    Email: str
    FirstName: str
    LastName: str


class UpdateInstructorRequest(CaseInsensitiveModel):
    OldEmail: str
    NewEmail: str
    FirstName: str
    LastName: str
    IsActive: bool | None = None


# --- responses ---------------------------------------------------------------------------------------------


def timestamp(now: datetime | None = None) -> str:
    """`YYYY-MM-DDTHH:mm:ss.SSS+00:00`, as the spec shows. (`isoformat` writes exactly that for an aware UTC time,
    at a tenth of `strftime`'s cost: every answer carries one.)"""
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")


class SuccessEnvelope(BaseModel):
    status: Literal["Success"] = "Success"
    correlationId: str
    timestamp: str
    message: str | None = Field(default=None, description="Only when a change is saved but the meeting provider "
                                "could not take it yet: what will happen (it is retried automatically)")


class JoinUrlData(BaseModel):
    joinUrl: str


class LaunchEnvelope(SuccessEnvelope):
    data: JoinUrlData


class Attendee(BaseModel):
    email: str


class AttendeesData(BaseModel):
    attendees: list[Attendee]


class AttendeesEnvelope(SuccessEnvelope):
    data: AttendeesData


class ExtendedOptionNode(BaseModel):
    Type: Literal["Label", "CheckBox"]
    Id: str
    ParentId: str | None = None
    Name: str
    Description: str | None = None
    Placeholder: str | None = None
    Value: Any = None
    IsNameVisible: bool = True
    IsMultiline: bool = False
    IsChecked: bool = False
    ChildExtendedOptions: list[ExtendedOptionNode] = Field(default_factory=list)


class ExtendedOptionsData(BaseModel):
    extendedOptions: list[ExtendedOptionNode]


class ExtendedOptionsEnvelope(SuccessEnvelope):
    data: ExtendedOptionsData


class ErrorDetail(BaseModel):
    code: int
    message: str


class ErrorEnvelope(BaseModel):
    status: Literal["ValidationError", "SystemError", "PartialSuccess"]
    correlationId: str
    timestamp: str
    error: ErrorDetail


# Starlette's JSONResponse settings, in an encoder made once: `json.dumps` with options builds a new encoder on
# every call, and the launch endpoint answers thousands of envelopes a second.
_ENVELOPE_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class EnvelopeResponse(JSONResponse):
    """A response envelope: the same bytes as Starlette's JSONResponse (tests/lms/test_wire.py compares them)."""

    def render(self, content: Any) -> bytes:
        return _ENVELOPE_JSON.encode(content).encode("utf-8")


def error_body(code: int, message: str, correlation: str) -> dict[str, Any]:
    return {
        "status": "ValidationError" if code < 500 else "SystemError",
        "correlationId": correlation,
        "timestamp": timestamp(),
        "error": {"code": code, "message": message},
    }


def describe_validation_error(exc: ValidationError | list[dict[str, Any]], what: str) -> str:
    """Turn pydantic's errors into one sentence naming each bad field and what to send instead."""
    errors = exc.errors() if isinstance(exc, ValidationError) else exc
    problems: list[str] = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body",) and not str(part).isdigit()]
        # Pydantic appends the union member type to the location (e.g. "str", "float"); drop those.
        loc = [part for part in loc if part not in ("str", "float", "int", "bool", "list[str]", "function-after")]
        field = ".".join(loc) or "the body"
        kind = err.get("type", "")
        if kind == "missing":
            problem = f"{field} is required"
        elif kind == "json_invalid":
            problem = "the body is not valid JSON"
        elif kind in ("model_type", "model_attributes_type", "dict_type") and field == "the body":
            problem = "the body must be a JSON object, sent with Content-Type: application/json"
        elif kind == "invalid_unicode":
            problem = (f"{field} contains an escaped character that is not valid Unicode (an unpaired surrogate "
                       "such as \\ud800); send the text as it is, in UTF-8")
        elif kind.startswith("string") or kind == "str_type":
            problem = f"{field} must be text"
        elif kind.startswith("bool"):
            problem = f"{field} must be true or false"
        elif kind.startswith("list"):
            problem = f"{field} must be a list"
        else:
            problem = f"{field}: {err.get('msg', 'invalid value')}"
        if problem not in problems:
            problems.append(problem)
    return f"{what}: {'; '.join(problems)}. Correct {'these' if len(problems) > 1 else 'this'} and send again."
