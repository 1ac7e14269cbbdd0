"""GoTo Training's REST client (G2T REST v1, docs/providers.md §5), on top of `providers.http`.

- `GotoSettings` (in settings.py): what an admin configures per connection (one message names every problem).
- `GotoTokenProvider`: 60-minute access tokens from the organizer's refresh token (`grant_type=refresh_token` at
  the token URL with HTTP Basic client credentials), cached and renewed 5 minutes early by one caller at a time; a
  401 makes the first caller renew and the others reuse its token. When GoTo hands back a new refresh token it
  replaces the old one in memory at once and is passed to `on_settings_change` (see `GotoTokenProvider`).
- `GotoClient`: typed methods for the endpoints the adapter needs. GoTo allows 10 calls a second per API (§5.4),
  kept by a client-side `Quota`; its 429s carry no Retry-After, so they are retried with exponential backoff.
  GoTo's error bodies (`{"int_err_code", "msg"}` or `{"errorCode", "description", "incident"}`) become messages an
  admin can act on, and `ProviderApiError.code` / `.provider_message` carry GoTo's own code and text.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import quote

import httpx2
import pybreaker
from pydantic import SecretStr

from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import SettingsSink
from viltbridge.providers.goto.settings import GotoSettings
from viltbridge.providers.http import (
    BULK,
    INTERACTIVE,
    Budget,
    CachedBearerToken,
    ProviderApiError,
    ProviderCallFailed,
    ProviderHttp,
    Quota,
    RateLimits,
    token_answer,
)

__all__ = ["GotoClient", "GotoTokenProvider", "goto_time"]

log = logging.getLogger("viltbridge.providers.goto")

PROVIDER = "goto"
NAME = "GoTo Training"
SECOND_WINDOW = 1.1
ADMIN_PAGE_SIZE = 100  # users per Admin API page


# ---------------------------------------------------------------------------------------------------------------
# Token provider


class GotoTokenProvider(CachedBearerToken):
    """Bearer tokens renewed from the organizer's refresh token.

    GoTo's token answer may carry a new `refresh_token` [M]. It replaces the current one in memory before anything
    else happens (the old one may stop working at once) and is handed to `on_settings_change`, whose job is to store
    it where the connection's settings live; without such a sink a restart goes back to the configured token,
    which works as long as GoTo has not revoked it. The answer's `principal` (the organizer's email) is kept for
    the adapter; `organizer_key`/`account_key` are read only if an older token answer still carries them (the
    current one does not: they come from the settings).
    """

    provider_kind = "goto"

    def __init__(self, http: ProviderHttp, settings: GotoSettings, *, clock: Callable[[], float] = time.monotonic,
                 refresh_margin: float = 300.0, on_settings_change: SettingsSink | None = None) -> None:
        super().__init__(clock=clock, refresh_margin=refresh_margin, on_settings_change=on_settings_change)
        self._http = http
        self._settings = settings
        self._refresh_token = settings.refresh_token
        self.rotations = 0  # new refresh tokens received
        self.principal: str | None = None
        self.organizer_key: str | None = None
        self.account_key: str | None = None

    @property
    def refresh_token(self) -> SecretStr:
        """The refresh token the next renewal will use (the latest GoTo gave)."""
        return self._refresh_token

    async def fetch(self) -> tuple[str, float]:
        settings = self._settings
        response, used = await self.renew_with_refresh_token(
            PROVIDER, self._refresh_token.get_secret_value(), self._renew_with, _explain_token_error)
        self._refresh_token = SecretStr(used)  # the stored one, if another adapter had replaced ours
        token, lifetime, body = token_answer(PROVIDER, response, settings.token_url, "token_url")
        self.principal = str(body["principal"]).strip().lower() if body.get("principal") else self.principal
        self.organizer_key = str(body["organizer_key"]) if body.get("organizer_key") else self.organizer_key
        self.account_key = str(body["account_key"]) if body.get("account_key") else self.account_key
        if self.organizer_key and self.organizer_key != settings.organizer_key:
            log.warning("goto: the refresh token belongs to organizer %s, but the connection's organizer_key is %s; "
                        "GoTo will refuse calls for the other organizer's trainings", self.organizer_key,
                        settings.organizer_key)
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token.get_secret_value():
            self._refresh_token = SecretStr(rotated)  # first: the old one may already be dead
            self.rotations += 1
            await self.keep_setting(PROVIDER, "refresh_token", rotated)
        return token, lifetime

    async def _renew_with(self, refresh_token: str) -> httpx2.Response:
        settings = self._settings
        basic = base64.b64encode(
            f"{settings.client_id}:{settings.client_secret.get_secret_value()}".encode()).decode()
        return await self._http.request(
            "POST", settings.token_url, operation="renew its access token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers={"Authorization": f"Basic {basic}"}, authenticate=False, use_breaker=False, idempotent=True,
            budget=INTERACTIVE)


def _explain_token_error(err: ProviderApiError) -> str:
    body = err.body if isinstance(err.body, dict) else {}
    code = str(body.get("error") or err.code or "").lower()
    text = f"{code} {err.provider_message}".lower()
    if code == "invalid_client" or err.http_status == 401 or "client" in text:
        return ("GoTo refused viltbridge's OAuth client: client_id or client_secret is wrong. Copy both from the "
                "OAuth client's page on developer.goto.com.")
    if code == "invalid_grant" or "refresh" in text or "grant" in text:
        return ("GoTo refused the refresh_token: it has expired or was revoked (or a newer one replaced it). The "
                "organizer must authorise the OAuth client again (authorization-code flow); paste the refresh_token "
                "of that answer into the connection settings.")
    return (f"GoTo refused to renew the access token: {err.provider_message} (HTTP {err.http_status}). Check the "
            "OAuth client on developer.goto.com and the token_url setting.")


def goto_time(moment: datetime) -> str:
    """GoTo's date-times: ISO-8601 in UTC with a Z, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_or_none(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# The client


class GotoClient:
    """GoTo Training's API for one organizer. Use `async with GotoClient(settings) as goto:` or `aclose()`.

    Every method takes `budget`: `INTERACTIVE` (a person is waiting) or `BULK` (background jobs). Errors are
    `ProviderFailed` subclasses with admin-readable messages.
    """

    def __init__(
        self,
        settings: GotoSettings,
        *,
        limits: RateLimits | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_settings_change: SettingsSink | None = None,
    ) -> None:
        self.settings = settings
        self.organizer_key = settings.organizer_key
        self.http = ProviderHttp(PROVIDER, display_name=NAME, account=f"{settings.client_id}:{settings.organizer_key}",
                                 base_url=settings.api_base_url, limits=limits, breaker=breaker, transport=transport)
        self.tokens = GotoTokenProvider(self.http, settings, clock=clock, on_settings_change=on_settings_change)
        self.http.auth = self.tokens
        per_second = settings.rate_limit_per_second
        # As for Zoom: a 1.1 s window absorbs network jitter between our clock and GoTo's, and bursts of a third
        # of the limit reach GoTo spread over the second, not as one lump.
        self.quota = Quota(f"goto:{settings.client_id}:g2t:second", per_second, SECOND_WINDOW,
                           burst=max(1, per_second // 3),
                           label=f"GoTo Training's API limit ({per_second} calls a second)")
        # Background registrations (learners registered ahead of their click) take at most half of the limit on
        # top of it, so learners clicking meanwhile always find room (interactive work goes first).
        background = max(1, per_second // 2)
        self.background_quota = Quota(f"goto:{settings.client_id}:g2t:background", background, SECOND_WINDOW,
                                      burst=max(1, background // 3),
                                      label=f"viltbridge's share of GoTo Training's API limit for background "
                                            f"registrations ({background} calls a second)")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _training(self, training_key: str, suffix: str = "") -> str:
        return f"/organizers/{self.organizer_key}/trainings/{quote(str(training_key), safe='')}{suffix}"

    async def _call(self, method: str, path: str, *, operation: str, budget: Budget, json: Any = None,
                    idempotent: bool | None = None, background: bool = False) -> httpx2.Response:
        quotas = [self.background_quota, self.quota] if background else [self.quota]
        try:
            return await self.http.request(method, path, operation=operation, json=json, budget=budget,
                                           idempotent=idempotent, quotas=quotas)
        except ProviderCallFailed as err:
            raise _explain(err, operation=operation) from None

    async def _json(self, method: str, path: str, *, kind: type, **kwargs: Any) -> Any:
        response = await self._call(method, path, **kwargs)
        body = _json_or_none(response)
        if not isinstance(body, kind):
            raise ProviderFailed(PROVIDER, f"GoTo Training answered with something unexpected while viltbridge tried "
                                           f"to {kwargs['operation']} (HTTP {response.status_code}); check "
                                           "api_base_url.")
        return body

    # -- organizers -----------------------------------------------------------------------------------------

    async def account_organizers(self, account_key: str, *, budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /accounts/{accountKey}/organizers`: every organizer of a multi-user account (`organizerKey`,
        `email`, `givenName`, `surname`). Deprecated by GoTo in favour of the Admin API, still documented."""
        rows = await self._json("GET", f"/accounts/{quote(account_key, safe='')}/organizers", kind=list,
                                budget=budget, operation="list the organizers of the GoTo account")
        return [row for row in rows if isinstance(row, dict)]

    async def admin_account_users(self, account_key: str, *, budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """Admin API `GET /accounts/{accountKey}/users`, paged with `pageSize`/`offset` (`{"results": [...],
        "total"}`): the account's users with `key` (the same key as their organizerKey), `email`, `firstName`,
        `lastName` and `products` (`G2T` for a GoTo Training licence). Needs an account admin's authorisation."""
        users: list[dict[str, Any]] = []
        base = f"{self.settings.admin_api_url}/accounts/{quote(account_key, safe='')}/users"
        while True:
            page = await self._json("GET", f"{base}?pageSize={ADMIN_PAGE_SIZE}&offset={len(users)}", kind=dict,
                                    budget=budget, operation="list the users of the GoTo account (Admin API)")
            rows = [row for row in page.get("results") or [] if isinstance(row, dict)]
            users.extend(rows)
            total = page.get("total")
            if not rows or not isinstance(total, int) or len(users) >= total:
                return users

    # -- trainings ------------------------------------------------------------------------------------------

    async def create_training(self, body: Mapping[str, Any], *, budget: Budget = INTERACTIVE) -> str:
        """`POST /organizers/{k}/trainings` (201): the new `trainingKey`, answered as a bare JSON string. Never
        repeated after an ambiguous failure: a second call would make a second training."""
        response = await self._call("POST", f"/organizers/{self.organizer_key}/trainings", json=dict(body),
                                    budget=budget, operation=f"create the training '{body.get('name')}'")
        key = _json_or_none(response)
        if not isinstance(key, str | int) or isinstance(key, bool) or not str(key).strip():
            raise ProviderFailed(PROVIDER, "GoTo Training created a training but answered without its key (HTTP "
                                           f"{response.status_code}); check api_base_url.")
        return str(key).strip()

    async def get_training(self, training_key: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", self._training(training_key), kind=dict, budget=budget,
                                                  operation=f"read the GoTo training {training_key}")
        return result

    async def list_trainings(self, *, budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /organizers/{k}/trainings`: the organizer's scheduled trainings (completed ones are left out)."""
        rows = await self._json("GET", f"/organizers/{self.organizer_key}/trainings", kind=list, budget=budget,
                                operation="list the organizer's GoTo trainings")
        return [row for row in rows if isinstance(row, dict)]

    async def update_name_description(self, training_key: str, name: str, description: str, *,
                                      budget: Budget = INTERACTIVE) -> None:
        """`PUT .../nameDescription` (204)."""
        await self._call("PUT", self._training(training_key, "/nameDescription"),
                         json={"name": name, "description": description}, budget=budget,
                         operation=f"rename the GoTo training {training_key}")

    async def update_times(self, training_key: str, time_zone: str, times: list[dict[str, str]], *,
                           notify: bool = False, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`PUT .../times` (200 `{notifiedRegistrants, notifiedTrainers}`). GoTo notifies both by default, so the
        flags are always sent."""
        body = {"timeZone": time_zone, "times": times, "notifyRegistrants": notify, "notifyTrainers": notify}
        response = await self._call("PUT", self._training(training_key, "/times"), json=body, budget=budget,
                                    operation=f"reschedule the GoTo training {training_key}")
        answer = _json_or_none(response)
        return answer if isinstance(answer, dict) else {}

    async def update_organizers(self, training_key: str, organizer_keys: list[str], *,
                                budget: Budget = INTERACTIVE) -> None:
        """`PUT .../organizers` (204): replaces the co-organizers (multi-user accounts with sharing only)."""
        body = {"organizers": [int(key) for key in organizer_keys], "notifyOrganizers": False}
        await self._call("PUT", self._training(training_key, "/organizers"), json=body, budget=budget,
                         operation=f"set the co-organizers of the GoTo training {training_key}")

    async def delete_training(self, training_key: str, *, missing_ok: bool = False,
                              budget: Budget = INTERACTIVE) -> None:
        """`DELETE /organizers/{k}/trainings/{trainingKey}` (204; GoTo emails nobody)."""
        try:
            await self._call("DELETE", self._training(training_key), budget=budget,
                             operation=f"delete the GoTo training {training_key}")
        except ProviderApiError as err:
            if not (missing_ok and err.http_status == 404):
                raise

    async def start_url(self, training_key: str, *, budget: Budget = INTERACTIVE) -> str:
        """`GET /trainings/{trainingKey}/start` → `{hostURL}`: starts the training without the organizer's login."""
        body = await self._json("GET", f"/trainings/{quote(str(training_key), safe='')}/start", kind=dict,
                                budget=budget, operation=f"get the start link of the GoTo training {training_key}")
        if not body.get("hostURL"):
            raise ProviderFailed(PROVIDER, f"GoTo Training gave no start link for the training {training_key}.")
        return str(body["hostURL"])

    # -- registrants ----------------------------------------------------------------------------------------

    async def register(self, training_key: str, email: str, given_name: str, surname: str, *,
                       budget: Budget = INTERACTIVE, background: bool = False) -> dict[str, Any]:
        """`POST .../registrants` (201 `{registrantKey, joinUrl, confirmationUrl}`). A second registration of the
        same email is a 409 `ProviderApiError` (see `registrants`). Safe to repeat: GoTo refuses a duplicate.
        `background`: within the background share of the limit (see `background_quota`)."""
        body = {"email": email, "givenName": given_name, "surname": surname}
        result: dict[str, Any] = await self._json(
            "POST", self._training(training_key, "/registrants"), kind=dict, json=body, idempotent=True,
            budget=budget, background=background, operation=f"register {email} for the GoTo training {training_key}")
        return result

    async def registrants(self, training_key: str, *, budget: Budget = INTERACTIVE,
                          background: bool = False) -> list[dict[str, Any]]:
        """`GET .../registrants`: every registrant with `registrantKey`, `email`, `joinUrl`, `status`. GoTo's cache
        behind it may lag up to two hours (§5.3)."""
        rows = await self._json("GET", self._training(training_key, "/registrants"), kind=list, budget=budget,
                                background=background,
                                operation=f"list the registrants of the GoTo training {training_key}")
        return [row for row in rows if isinstance(row, dict)]

    # -- reports --------------------------------------------------------------------------------------------

    async def report_sessions(self, training_key: str, *, budget: Budget = BULK) -> list[dict[str, Any]]:
        """`GET /reports/organizers/{k}/trainings/{trainingKey}`: the training's completed sessions (`sessionKey`,
        `sessionStartTime`, `sessionEndTime`, `attendanceCount`, `duration` in minutes)."""
        rows = await self._json("GET", f"/reports/organizers/{self.organizer_key}/trainings/"
                                       f"{quote(str(training_key), safe='')}", kind=list, budget=budget,
                                operation=f"read the session report of the GoTo training {training_key}")
        return [row for row in rows if isinstance(row, dict)]

    async def session_attendees(self, session_key: str, *, budget: Budget = BULK) -> list[dict[str, Any]]:
        """`GET /reports/organizers/{k}/sessions/{sessionKey}/attendees`: per registrant `email`, `givenName`,
        `surname`, `timeInSession` (minutes) and `inSessionTimes` [{joinTime, leaveTime, timeInPartOfSession}];
        registrants who did not attend come last with `timeInSession: 0`."""
        rows = await self._json("GET", f"/reports/organizers/{self.organizer_key}/sessions/"
                                       f"{quote(str(session_key), safe='')}/attendees", kind=list, budget=budget,
                                operation=f"read the attendees of the GoTo training session {session_key}")
        return [row for row in rows if isinstance(row, dict)]


# ---------------------------------------------------------------------------------------------------------------
# GoTo's errors, in words an admin can act on


def goto_error(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from GoTo's error bodies: `{"int_err_code", "msg"}`, `{"errorCode", "description",
    "incident"}` (the incident id is what GoTo support asks for), or OAuth's `{"error", "error_description"}`."""
    if not isinstance(body, dict):
        return None, None
    code = body.get("int_err_code") or body.get("errorCode") or body.get("error")
    message = body.get("msg") or body.get("description") or body.get("error_description") or body.get("message")
    if message and body.get("incident"):
        message = f"{message} (GoTo incident {body['incident']})"
    return (str(code) if code else None), (str(message) if message else None)


def _explain(err: ProviderCallFailed, *, operation: str) -> ProviderCallFailed:
    if err.explained or not isinstance(err, ProviderApiError):
        return err
    code, goto_said = goto_error(err.body)
    if goto_said:
        err = err.with_message(err.message, explained=False)
        err.provider_message = goto_said
        err.code = code or err.code
    status = err.http_status
    said = goto_said or err.provider_message or f"HTTP {status}"
    coded = f" [{code}]" if code else ""
    prefix = f"GoTo Training could not {operation}"
    if status == 401:
        return err.with_message(f"{prefix}: GoTo rejected viltbridge's access token even after renewing it{coded}. "
                                "The organizer's authorisation may have been revoked; the organizer must authorise "
                                "the OAuth client again and the new refresh_token be pasted into the settings.")
    if status == 403:
        return err.with_message(f"{prefix}: GoTo does not allow it ({said}{coded}). Check that organizer_key is the "
                                "key of the organizer who authorised the OAuth client (the token answer's "
                                "organizer_key), that the client includes GoTo Training, and that the organizer "
                                "has a GoTo Training licence.")
    if status == 404:
        return err.with_message(f"{prefix}: it does not exist at GoTo (it may have been deleted there). {said}"
                                f"{coded}")
    if status == 409:
        return err.with_message(f"{prefix}: it conflicts with what GoTo already holds ({said}{coded}).")
    if status == 400:
        return err.with_message(f"{prefix}: GoTo says the request is invalid: {said}{coded}.")
    if status == 429 or status >= 500:
        # ProviderHttp's message already says what was tried and when to try again; GoTo's own words are added.
        return err.with_message(f"{err.message} GoTo said: {said}{coded}.", explained=False) if goto_said else err
    return err.with_message(f"{prefix}: {said}{coded} (HTTP {status}).", explained=False)
