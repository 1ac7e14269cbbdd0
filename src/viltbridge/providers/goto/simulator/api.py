"""The GoTo Training simulator's API operations: one handler per (method, path) of GoTo's GoToTraining v1 OpenAPI
document that the connector uses. Handlers run under the state lock and answer (status, body); a body of None is
an empty answer (204)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from viltbridge.providers.goto.simulator.state import (
    DESCRIPTION_LIMIT,
    NAME_LIMIT,
    GotoApiError,
    GotoState,
    Registrant,
    Training,
    parse_time,
    valid_zone,
)

__all__ = ["API_ENDPOINTS", "ApiCall", "ApiEndpoint"]

Answer = tuple[int, Any]


@dataclass(frozen=True)
class ApiCall:
    path: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiEndpoint:
    method: str
    path: str  # as in the spec, under /G2T/rest
    handler: Callable[[GotoState, ApiCall], Answer]


# -- helpers ------------------------------------------------------------------------------------------------------


def _object(call: ApiCall) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise GotoApiError(400, "InvalidRequest", "The request body must be a JSON object.")
    return call.body


def _owned(state: GotoState, call: ApiCall) -> Training:
    """The training of the path, under the organizer of the path (its owner or a co-organizer)."""
    organizer_key = call.path["organizerKey"]
    state.organizer(organizer_key)
    training = state.training(call.path["trainingKey"])
    if organizer_key not in (training.owner, *training.co_organizers):
        raise GotoApiError(404, "NotFound", "The requested training could not be found.")
    return training


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise GotoApiError(400, "InvalidRequest", "name is required.")
    if len(value) > NAME_LIMIT:
        raise GotoApiError(400, "InvalidRequest", f"name must be at most {NAME_LIMIT} characters.")
    return value


def _description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > DESCRIPTION_LIMIT:
        raise GotoApiError(400, "InvalidRequest", f"description must be text of at most {DESCRIPTION_LIMIT} "
                                                  "characters.")
    return value


def _times(state: GotoState, value: object, *, past_ok: bool = False) -> list[tuple[datetime, datetime]]:
    if not isinstance(value, list) or not value:
        raise GotoApiError(400, "InvalidRequest", "times must hold at least one {startDate, endDate}.")
    times = []
    for item in value:
        if not isinstance(item, dict):
            raise GotoApiError(400, "InvalidRequest", "Each entry of times needs startDate and endDate.")
        start, end = parse_time(item.get("startDate"), "startDate"), parse_time(item.get("endDate"), "endDate")
        if end <= start:
            raise GotoApiError(400, "InvalidRequest", "endDate must be after startDate.")
        if end - start > timedelta(hours=24):
            raise GotoApiError(400, "InvalidRequest", "A session may last at most 24 hours.")  # [L]
        if not past_ok and start < state.clock.now() - timedelta(minutes=5):
            raise GotoApiError(400, "InvalidRequest", "A training cannot start in the past.")  # [L] 5 min grace
        times.append((start, end))
    return times


def _co_organizers(state: GotoState, value: object, owner: str) -> list[str]:
    if value is None or value == []:
        return []
    if not state.config.multi_user:
        raise GotoApiError(400, "InvalidRequest", "Co-organizers can only be added on multi-user accounts.")
    if not isinstance(value, list) or not all(isinstance(k, int | str) and str(k).isdigit() for k in value):
        raise GotoApiError(400, "InvalidRequest", "organizers must be a list of organizer keys.")
    keys = [str(k) for k in value]
    unknown = [k for k in keys if k not in state.organizers]
    if unknown:
        raise GotoApiError(400, "InvalidOrganizer", f"Organizer {unknown[0]} is not an organizer on this account.")
    return [k for k in dict.fromkeys(keys) if k != owner]


# -- operations ----------------------------------------------------------------------------------------------------


def account_organizers(state: GotoState, call: ApiCall) -> Answer:
    if call.path["accountKey"] != state.config.account_key:
        raise GotoApiError(403, "AccessDenied", "The access token does not allow access to this account.")
    if not state.config.multi_user:
        raise GotoApiError(403, "AccessDenied", "The account is not a multi-user account.")  # [L]
    return 200, list(state.organizers.values())


def admin_account_users(state: GotoState, call: ApiCall) -> Answer:
    """Admin API user listing, paged by `pageSize`/`offset` into `{"results", "total"}`."""
    if call.path["accountKey"] != state.config.account_key:
        raise GotoApiError(403, "AccessDenied", "The access token does not allow access to this account.")
    if not state.config.admin_api:
        # [L] the exact code and text for a non-admin token are not documented
        raise GotoApiError(403, "AccessDenied", "The user is not an admin of this account.", described=True)
    try:
        offset, size = int(call.query.get("offset", "0")), int(call.query.get("pageSize", "20"))
    except ValueError:
        raise GotoApiError(400, "InvalidRequest", "offset and pageSize must be integers.") from None
    users = state.admin_users()
    return 200, {"results": users[offset:offset + max(size, 1)], "total": len(users)}


def list_trainings(state: GotoState, call: ApiCall) -> Answer:
    """Scheduled trainings in the order they were created; completed ones left out (the spec)."""
    organizer_key = call.path["organizerKey"]
    state.organizer(organizer_key)
    now = state.clock.now()
    rows = [state.training_json(t) for t in state.trainings.values()
            if not t.deleted and organizer_key in (t.owner, *t.co_organizers) and max(e for _, e in t.times) > now]
    return 200, rows


def create_training(state: GotoState, call: ApiCall) -> Answer:
    organizer_key = call.path["organizerKey"]
    state.organizer(organizer_key)
    body = _object(call)
    settings = body.get("registrationSettings") or {}
    if not isinstance(settings, dict):
        raise GotoApiError(400, "InvalidRequest", "registrationSettings must be an object.")
    training = Training(
        key=state.key(), training_id=state.digits(9), owner=organizer_key, name=_name(body.get("name")),
        description=_description(body.get("description")), time_zone=valid_zone(body.get("timeZone")),
        times=_times(state, body.get("times")),
        co_organizers=_co_organizers(state, body.get("organizers"), organizer_key),
        disable_web_registration=bool(settings.get("disableWebRegistration", False)),
        disable_confirmation_email=bool(settings.get("disableConfirmationEmail", False)),
        created=state.clock.now())
    state.trainings[training.key] = training
    return 201, training.key  # a bare JSON string (the spec)


def get_training(state: GotoState, call: ApiCall) -> Answer:
    return 200, state.training_json(_owned(state, call))


def delete_training(state: GotoState, call: ApiCall) -> Answer:
    _owned(state, call).deleted = True
    return 204, None


def put_name_description(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    body = _object(call)
    training.name = _name(body.get("name"))
    if "description" in body:
        training.description = _description(body.get("description"))
    return 204, None


def put_times(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    body = _object(call)
    zone = valid_zone(body.get("timeZone"))
    times = _times(state, body.get("times"))
    training.time_zone, training.times = zone, times
    # GoTo notifies both unless told not to (the spec: default true).
    registrants = len(training.registrants) if body.get("notifyRegistrants", True) else 0
    trainers = 1 + len(training.co_organizers) if body.get("notifyTrainers", True) else 0
    return 200, {"notifiedRegistrants": registrants, "notifiedTrainers": trainers}


def put_organizers(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    body = _object(call)
    if "organizers" not in body:
        raise GotoApiError(400, "InvalidRequest", "organizers is required.")
    training.co_organizers = _co_organizers(state, body.get("organizers"), training.owner)
    return 204, None


def start_training(state: GotoState, call: ApiCall) -> Answer:
    """`GET /trainings/{trainingKey}/start`: a host link that starts the training without a login."""
    training = state.training(call.path["trainingKey"])
    token = state.token()[:32]
    state.host_links[token] = training.key
    return 200, {"hostURL": f"{state.base_url}/start/{training.key}/{token}"}


def register(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    body = _object(call)
    email, given, surname = body.get("email"), body.get("givenName"), body.get("surname")
    if not isinstance(email, str) or "@" not in email:
        raise GotoApiError(400, "InvalidRequest", "email is required and must be an email address.")
    if not isinstance(given, str) or not given.strip() or not isinstance(surname, str):
        raise GotoApiError(400, "InvalidRequest", "givenName and surname are required.")
    if training.registrant_by_email(email) is not None:
        raise GotoApiError(409, "DuplicateRegistrant", "The registrant is already registered for this training.")
    registrant = Registrant(key=state.key(), email=email, given_name=given, surname=surname,
                            registered=state.clock.now(), join_token=state.token()[:24])
    training.registrants[registrant.key] = registrant
    return 201, {"registrantKey": registrant.key, "joinUrl": state.join_url(training, registrant),
                 "confirmationUrl": state.confirmation_url(training, registrant)}


def list_registrants(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    return 200, [state.registrant_json(training, r) for r in training.registrants.values()]


def get_registrant(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    registrant = training.registrants.get(call.path["registrantKey"])
    if registrant is None:
        raise GotoApiError(404, "NotFound", "The requested registrant could not be found.")
    return 200, state.registrant_json(training, registrant)


def delete_registrant(state: GotoState, call: ApiCall) -> Answer:
    training = _owned(state, call)
    if training.registrants.pop(call.path["registrantKey"], None) is None:
        raise GotoApiError(404, "NotFound", "The requested registrant could not be found.")
    return 204, None


def report_training_sessions(state: GotoState, call: ApiCall) -> Answer:
    """Sessions of a training, once their report is ready. A deleted training keeps its completed sessions."""
    state.organizer(call.path["organizerKey"])
    training = state.trainings.get(call.path["trainingKey"])
    if training is None:
        raise GotoApiError(404, "NotFound", "The requested training could not be found.")
    return 200, [state.session_json(training, s) for s in state.reported_sessions(training)]


def report_session_attendees(state: GotoState, call: ApiCall) -> Answer:
    state.organizer(call.path["organizerKey"])
    for training in state.trainings.values():
        for session in state.reported_sessions(training):
            if session.key == call.path["sessionKey"]:
                return 200, state.attendees_json(training, session)
    raise GotoApiError(404, "NotFound", "The requested session could not be found.")


TRAINING = "/organizers/{organizerKey}/trainings/{trainingKey}"

API_ENDPOINTS = (
    ApiEndpoint("GET", "/accounts/{accountKey}/organizers", account_organizers),
    ApiEndpoint("GET", "/organizers/{organizerKey}/trainings", list_trainings),
    ApiEndpoint("POST", "/organizers/{organizerKey}/trainings", create_training),
    ApiEndpoint("GET", TRAINING, get_training),
    ApiEndpoint("DELETE", TRAINING, delete_training),
    ApiEndpoint("PUT", TRAINING + "/nameDescription", put_name_description),
    ApiEndpoint("PUT", TRAINING + "/times", put_times),
    ApiEndpoint("PUT", TRAINING + "/organizers", put_organizers),
    ApiEndpoint("GET", TRAINING + "/registrants", list_registrants),
    ApiEndpoint("POST", TRAINING + "/registrants", register),
    ApiEndpoint("GET", TRAINING + "/registrants/{registrantKey}", get_registrant),
    ApiEndpoint("DELETE", TRAINING + "/registrants/{registrantKey}", delete_registrant),
    ApiEndpoint("GET", "/trainings/{trainingKey}/start", start_training),
    ApiEndpoint("GET", "/reports/organizers/{organizerKey}/trainings/{trainingKey}", report_training_sessions),
    ApiEndpoint("GET", "/reports/organizers/{organizerKey}/sessions/{sessionKey}/attendees",
                report_session_attendees),
)

# GoTo's Admin API (https://api.getgo.com/admin/rest/v1), served under ADMIN_PREFIX.
ADMIN_ENDPOINTS = (
    ApiEndpoint("GET", "/accounts/{accountKey}/users", admin_account_users),
)
