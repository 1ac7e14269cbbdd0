"""The Cornerstone vILT contract's endpoints. Each one: authenticate, translate the wire model, call a service."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.types import Scope

from viltbridge.app import access, attendance, instructors, launches, sessions
from viltbridge.app.context import AppContext, context_of
from viltbridge.app.uow import reading
from viltbridge.core import json_text
from viltbridge.core.emails import checked_email, decode_base64_email, parse_email_list
from viltbridge.core.errors import Forbidden, InvalidInput, NotAuthenticated
from viltbridge.core.models import Connection
from viltbridge.core.part_states import vocabulary_text
from viltbridge.core.times import parse_lms_datetime, parse_utc_offset
from viltbridge.lms.cornerstone import auth
from viltbridge.lms.cornerstone.wire import (
    AddInstructorRequest,
    AttendeesEnvelope,
    EnvelopeResponse,
    ErrorEnvelope,
    ExtendedOptionsEnvelope,
    LaunchEnvelope,
    SessionRequest,
    SessionUpdateRequest,
    SuccessEnvelope,
    UpdateInstructorRequest,
    timestamp,
)
from viltbridge.observability import correlation_id
from viltbridge.security.throttle import SignInThrottled

log = logging.getLogger("viltbridge.lms.cornerstone")

router = APIRouter(tags=["Cornerstone vILT contract"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "The request is wrong; error.message says what to correct",
        401: "Missing or wrong credentials",
        403: "The integration is deactivated",
        404: "Unknown session",
        413: "The body is larger than the connector accepts",
        500: "The connector or the meeting provider failed; nothing was changed. error.message says when to retry",
        429: "Too many calls with wrong credentials from this address; nothing was checked. Retry after "
             "Retry-After seconds, with the right credentials",
        503: "The connector's database is briefly unreachable; ask again after Retry-After seconds",
    }
    return {code: {"model": ErrorEnvelope, "description": meaning[code]} for code in codes}


COMMON = (401, 403, 429, 500, 503)


def _next_calls(session_id: str, *operations: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a success to what the LMS may call next about the same session (`session_id` is a runtime
    expression naming where the id was sent); schemathesis' stateful tests walk these sequences."""
    return {200: {"links": {operation: {"operationId": operation, "parameters": {"SessionId": session_id}}
                            for operation in operations}}}


SESSION_FOLLOW_UPS = ("UpdateSession", "LaunchSession", "GetAttendees", "GetExtendedOptions", "CancelSession")
CORRELATION = Header(alias="correlationId", description="Echoed in the response")
DEBUG = Header(alias="debug", description="true: log this request and its provider calls in detail")


async def lms_caller(request: Request) -> Connection:
    """Authenticates before FastAPI validates any body, so an unauthenticated or deactivated caller learns
    nothing from validation errors (only a body that is not JSON at all is refused earlier, as it is unreadable)."""
    async with reading(context_of(request)) as read:
        return await auth.authenticate(request.headers.get("authorization"), read, request.scope)



def _success(message: str | None = None, **data: Any) -> EnvelopeResponse:
    """The success envelope. Returned as a response, so FastAPI does not re-validate what is built here (the
    response models document it; the schemathesis suite checks every answer against them)."""
    body: dict[str, Any] = {"status": "Success", "correlationId": correlation_id.get(), "timestamp": timestamp()}
    if message:
        body["message"] = message
    if data:
        body["data"] = data
    return EnvelopeResponse(body)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_IN_LINE = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str | None, field: str, *, required: bool = True, limit: int = 200, multiline: bool = False) -> str:
    cleaned = (value or "").strip()
    if required and not cleaned:
        raise InvalidInput(f"{field} is empty; send a value.")
    if len(cleaned) > limit:
        raise InvalidInput(f"{field} is {len(cleaned)} characters long; at most {limit} are accepted.")
    if (_CONTROL if multiline else _CONTROL_IN_LINE).search(cleaned):
        raise InvalidInput(f"{field} contains control characters (such as NUL); send plain text.")
    return cleaned


def _session_id(value: str) -> str:
    session_id = _text(value, "SessionId")
    if "/" in session_id:
        # The path is decoded before routing, so even as %2F a "/" would split /session/{SessionId}/...: such a
        # session could be saved but never updated, launched or cancelled.
        raise InvalidInput(
            f"SessionId ({session_id[:80]}) contains '/', which cannot be used in the URLs the learning system calls "
            "for the session (its updates, launches and attendance); send Cornerstone's id for the session."
        )
    return session_id


def session_input(body: SessionRequest, session_id: str) -> sessions.SessionInput:
    """Validate and normalise a SessionRequest; every problem is reported with the field's contract name."""
    if body.SessionId is not None and body.SessionId.strip() and body.SessionId.strip() != session_id:
        raise InvalidInput(
            f"SessionId in the body ({body.SessionId.strip()[:80]}) differs from the SessionId in the URL "
            f"({session_id[:80]}); send the same id in both."
        )
    choices = None
    if body.ExtendedOptions is not None:
        choices = {
            option.Id: option.Value if option.Value is not None else bool(option.IsChecked)
            for option in body.ExtendedOptions
        }
    return sessions.SessionInput(
        external_id=_session_id(session_id),
        title=_text(body.Title, "Title", limit=2000),
        description=_text(body.Description, "Description", required=False, limit=100_000, multiline=True),
        creator_email=checked_email(body.CreatorEmail, field="CreatorEmail"),
        starts_at=parse_lms_datetime(body.DateBegin, field="DateBegin"),
        ends_at=parse_lms_datetime(body.DateEnd, field="DateEnd"),
        utc_offset_minutes=parse_utc_offset(body.TimeZone.UTCOffset),
        instructor_emails=(None if body.InstructorEmails is None
                           else parse_email_list(body.InstructorEmails, field="InstructorEmails")),
        lo_id=None if body.LoId is None else _text(body.LoId, "LoId", required=False),
        extended_options=choices,
    )


async def _schedule(ctx: AppContext, connection: Connection, request: sessions.SessionInput) -> JSONResponse:
    saved = await sessions.save(ctx, connection, request)
    session = saved.session
    log.info("session %s %s (%s)", request.external_id, "created" if saved.created else "updated",
             session.meeting.meeting_id if session.meeting else "no meeting")
    for conflict in saved.conflicts:
        log.warning("session %s saved with a scheduling conflict: %s", request.external_id, conflict)
    return _success(message=saved.message())


@router.post("/session", response_model=SuccessEnvelope, operation_id="CreateSession",
             responses={**_errors(400, 413, *COMMON), **_next_calls("$request.body#/SessionId", *SESSION_FOLLOW_UPS)},
             summary="CreateSession (a duplicate SessionId updates the session)")
async def create_session(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    body: Annotated[SessionRequest, Body()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    ctx = context_of(request)
    if body.SessionId is None or not body.SessionId.strip():
        raise InvalidInput("SessionId is required; send Cornerstone's id for this session.")
    return await _schedule(ctx, connection, session_input(body, _session_id(body.SessionId)))


@router.put("/session/{SessionId}", response_model=SuccessEnvelope, operation_id="UpdateSession",
            responses={**_errors(400, 413, *COMMON), **_next_calls("$request.path.SessionId", *SESSION_FOLLOW_UPS)},
            summary="UpdateSession (full replacement; an unknown SessionId creates it)")
async def update_session(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    SessionId: Annotated[str, Path()],
    body: Annotated[SessionUpdateRequest, Body()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    return await _schedule(context_of(request), connection, session_input(body, _session_id(SessionId)))


@router.delete("/session/{SessionId}", response_model=SuccessEnvelope, operation_id="CancelSession",
               responses={**_errors(400, *COMMON),  # after a cancellation the LMS may save it again, or ask
                          **_next_calls("$request.path.SessionId", "UpdateSession", "LaunchSession", "GetAttendees")},
               summary="CancelSession (idempotent: unknown or cancelled sessions succeed)")
async def cancel_session(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    SessionId: Annotated[str, Path()],
    LoId: Annotated[str | None, Query()] = None,
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    cancelled, owed = await sessions.cancel(context_of(request), connection, _session_id(SessionId))
    # One DELETE cancels one part: other parts sharing the LoId get DELETEs of their own.
    log.info("session %s (LoId %s) cancel: %s", SessionId, LoId or "-",
             "unknown, nothing to do" if cancelled is None else "cancelled")
    return _success(message=owed)


def _documented(*names: str, where: str = "path") -> list[dict[str, Any]]:
    return [{"name": name, "in": where, "required": where == "path", "schema": {"type": "string"}} for name in names]


# The hot path: Cornerstone calls it on every click. It takes only the Request, so FastAPI resolves no
# parameters (measured: ~160 us of ~530 us per request went to parameter solving and response validation);
# its parameters are documented below instead. `:path` because standard base64 may contain "/" and not every
# LMS percent-encodes it.
@router.get(
    "/session/{SessionId}/user/{base64EncodedEmail:path}/url", response_model=LaunchEnvelope,
    operation_id="LaunchSession", summary="LaunchSession: the joinUrl for one person",
    responses={**_errors(400, 404, *COMMON),
               **_next_calls("$request.path.SessionId", "GetAttendees", "UpdateSession", "CancelSession")},
    openapi_extra={"parameters": _documented("SessionId", "base64EncodedEmail")
                   + _documented("correlationId", "debug", where="header")},
)
async def launch_session(request: Request) -> Any:
    return await launch_answer(context_of(request), request.scope, request.headers.get("authorization"),
                              request.path_params["SessionId"], request.path_params["base64EncodedEmail"])


async def launch_answer(ctx: AppContext, scope: Scope, authorization: str | None, session_id: str,
                        encoded_email: str) -> EnvelopeResponse:
    """LaunchSession's success envelope, or the DomainError its error envelope is made from: for the route above
    and for the web layer's fast path to it (`web/launch_fast_path.py`), which must answer the same."""
    async with reading(ctx) as read:
        connection = await auth.authenticate(authorization, read, scope)
        email = decode_base64_email(encoded_email)
        url = await launches.launch_url(read, connection, _session_id(session_id), email)
    return _success(joinUrl=url)


@router.get("/session/{SessionId}/attendees", response_model=AttendeesEnvelope, operation_id="GetAttendees",
            responses={**_errors(400, 404, *COMMON), **_next_calls("$request.path.SessionId", "CancelSession")},
            summary="GetAttendees: emails of people who attended",
            description="The emails of the people who attended the part, as its attendance stands now. "
                        + vocabulary_text())
async def get_attendees(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    SessionId: Annotated[str, Path()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    result = await attendance.report(context_of(request), connection, _session_id(SessionId))
    log.info("attendance for %s: %d attendee(s), %s, evidence %s", SessionId, len(result.emails),
             result.state.value, result.source.value)
    return _success(attendees=[{"email": email} for email in result.emails])


@router.get("/session/{SessionId}/extendedoptions", response_model=ExtendedOptionsEnvelope,
            operation_id="GetExtendedOptions", responses=_errors(400, *COMMON),
            summary="GetExtendedOptions: the provider's per-session options")
async def get_extended_options(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    SessionId: Annotated[str, Path()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    kind, options, chosen = await sessions.options(context_of(request), connection, _session_id(SessionId))
    if not options or not connection.options.extended_options:
        return _success(extendedOptions=[])
    root_id = f"{kind}-options"
    children = [
        {"Type": "CheckBox", "Id": option.id, "ParentId": root_id, "Name": option.name,
         "Description": option.description, "Placeholder": None, "Value": None, "IsNameVisible": True,
         "IsMultiline": False, "IsChecked": bool(chosen.get(option.id, option.default)), "ChildExtendedOptions": []}
        for option in options
    ]
    root = {"Type": "Label", "Id": root_id, "ParentId": None, "Name": f"{kind} options",
            "Description": None, "Placeholder": None, "Value": None, "IsNameVisible": True, "IsMultiline": False,
            "IsChecked": False, "ChildExtendedOptions": children}
    return _success(extendedOptions=[root])


@router.post("/instructor", response_model=SuccessEnvelope, operation_id="AddInstructor",
             responses=_errors(400, 413, *COMMON), summary="AddInstructor (a known email updates the instructor)")
async def add_instructor(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    body: Annotated[AddInstructorRequest, Body()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    first, last = _text(body.FirstName, "FirstName"), _text(body.LastName, "LastName")
    await instructors.add(context_of(request), connection, body.Email, first, last)
    return _success()


@router.put("/instructor", response_model=SuccessEnvelope, operation_id="UpdateInstructor",
            responses=_errors(400, 413, *COMMON),
            summary="UpdateInstructor (an unknown OldEmail creates the instructor)")
async def update_instructor(
    request: Request,
    connection: Annotated[Connection, Depends(lms_caller)],
    body: Annotated[UpdateInstructorRequest, Body()],
    correlation: Annotated[str | None, CORRELATION] = None,
    debug: Annotated[str | None, DEBUG] = None,
) -> Any:
    first, last = _text(body.FirstName, "FirstName"), _text(body.LastName, "LastName")
    await instructors.update(context_of(request), connection, body.OldEmail, body.NewEmail, first, last,
                             body.IsActive)
    return _success()


# --- OAuth 2.0 client credentials (RFC 6749 §4.4; errors in RFC 6749 §5.2 form) ----------------------------


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="viltbridge"'} if status == 401 else {}
    headers["Cache-Control"] = "no-store"
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


async def _token_form(request: Request) -> dict[str, str] | None:
    """The token request's fields, keys lower-cased; None when the body cannot be read as what it claims to be."""
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            payload = json_text.loads(await request.body())
        except json_text.UnreadableJson:
            return None
        return {str(k).lower(): str(v) for k, v in payload.items()} if isinstance(payload, dict) else None
    form = await request.form()
    return {k.lower(): v for k, v in form.items() if isinstance(v, str)}


@router.post(
    "/oauth/token", operation_id="OAuthToken",
    summary="OAuth 2.0 client-credentials token (client id/secret = the connection's username/password)",
    responses={
        200: {"description": "An access token",
              "content": {"application/json": {"example": {"access_token": "vbat...", "token_type": "Bearer",
                                                           "expires_in": 3600, "scope": "vilt"}}}},
        400: {"description": "unsupported_grant_type or invalid_request (RFC 6749 §5.2)"},
        401: {"description": "invalid_client"},
        403: {"description": "the integration is deactivated"},
        429: {"description": "temporarily_unavailable: too many wrong credentials from this address; retry after "
                             "Retry-After seconds"},
    },
)
async def oauth_token(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Any:
    ctx = context_of(request)
    form = await _token_form(request)
    if form is None:
        return _oauth_error(400, "invalid_request", "The body is not a JSON object in UTF-8; send grant_type, "
                            "client_id and client_secret as a form (application/x-www-form-urlencoded) or JSON.")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Only grant_type=client_credentials is supported.")
    credentials = auth.basic_credentials(authorization) if authorization else None
    if credentials is None and form.get("client_id") and form.get("client_secret"):
        credentials = (form["client_id"], form["client_secret"])
    if credentials is None:
        return _oauth_error(400, "invalid_request",
                            "Send client_id and client_secret in the body or as HTTP Basic credentials.")
    try:
        async with reading(ctx) as read:
            token, ttl = await access.access_token(read, *credentials, failures=auth.failures_of(request.scope))
    except SignInThrottled as throttled:
        refused = _oauth_error(429, "temporarily_unavailable", throttled.message)
        refused.headers["Retry-After"] = str(throttled.retry_after_seconds)
        return refused
    except NotAuthenticated as wrong:
        return _oauth_error(401, "invalid_client", wrong.message)
    except Forbidden as deactivated:
        return _oauth_error(403, "access_denied", deactivated.message)
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": form.get("scope") or "vilt"},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
