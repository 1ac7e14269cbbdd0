"""Webex's REST client (Meetings API, docs/providers.md §3), on top of `providers.http`.

- `WebexSettings` (in settings.py): what an admin configures per connection (validated with readable messages).
- `WebexTokenProvider`: a fixed access token, or one refreshed from a refresh token (an Integration's or a Service
  App's) at the token URL, 10 minutes early; a 401 makes the first caller refresh and the others reuse its token.
- `WebexClient`: typed methods for the endpoints the adapter needs. Webex publishes no rate-limit numbers (they are
  dynamic per endpoint family, §3.9), so there is no client-side bucket: a 429 is retried after its `Retry-After`.
  Webex's errors become messages an admin can act on (`ProviderApiError` keeps the status and Webex's message).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import quote

import httpx2
import pybreaker
from pydantic import SecretStr

from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import SettingsSink
from viltbridge.providers.http import (
    BULK,
    INTERACTIVE,
    Budget,
    CachedBearerToken,
    ProviderApiError,
    ProviderCallFailed,
    ProviderHttp,
    RateLimits,
    token_answer,
)
from viltbridge.providers.webex.settings import WebexSettings

__all__ = ["WebexClient", "WebexTokenProvider", "next_link"]

log = logging.getLogger("viltbridge.providers.webex")

PROVIDER = "webex"
PAGE_SIZE = 100  # the largest `max` the list endpoints accept


# ---------------------------------------------------------------------------------------------------------------
# Token provider


class WebexTokenProvider(CachedBearerToken):
    """Bearer tokens: the configured access token first (if any), then refreshed ones (`grant_type=refresh_token`).
    Webex may hand back a new refresh token [M]: it is used from then on and handed to `on_settings_change` to be
    stored with the connection."""

    provider_kind = "webex"

    def __init__(self, http: ProviderHttp, settings: WebexSettings, *, clock: Callable[[], float] = time.monotonic,
                 refresh_margin: float = 600.0, on_settings_change: SettingsSink | None = None) -> None:
        super().__init__(clock=clock, refresh_margin=refresh_margin, on_settings_change=on_settings_change,
                         token=settings.access_token.get_secret_value() if settings.access_token else None)
        self._http = http
        self._settings = settings
        self._refresh_token = settings.refresh_token

    async def fetch(self) -> tuple[str, float]:
        settings = self._settings
        if self._refresh_token is None or settings.client_id is None or settings.client_secret is None:
            raise ProviderFailed(PROVIDER, "Webex refused the configured access_token (it has probably expired). "
                                           "Configure refresh_token, client_id and client_secret so viltbridge "
                                           "can renew tokens itself, or paste a new access_token.")
        response, used = await self.renew_with_refresh_token(
            PROVIDER, self._refresh_token.get_secret_value(), self._renew_with, _explain_token_error)
        self._refresh_token = SecretStr(used)  # the stored one, if another adapter had replaced ours
        token, lifetime, body = token_answer(PROVIDER, response, settings.token_url, "token_url")
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token.get_secret_value():
            self._refresh_token = SecretStr(rotated)
            await self.keep_setting(PROVIDER, "refresh_token", rotated)
        return token, lifetime

    async def _renew_with(self, refresh_token: str) -> httpx2.Response:
        settings = self._settings
        assert settings.client_id is not None and settings.client_secret is not None  # checked by `fetch`
        form = {"grant_type": "refresh_token", "client_id": settings.client_id,
                "client_secret": settings.client_secret.get_secret_value(), "refresh_token": refresh_token}
        return await self._http.request("POST", settings.token_url, operation="renew its access token", data=form,
                                        authenticate=False, use_breaker=False, idempotent=True, budget=INTERACTIVE)


def _explain_token_error(err: ProviderApiError) -> str:
    text = f"{err.code or ''} {err.provider_message}".lower()
    if "client" in text:
        return ("Webex refused viltbridge's app credentials: client_id or client_secret is wrong. Copy both from the "
                "Integration's or Service App's page on developer.webex.com.")
    if "refresh" in text or "grant" in text or err.http_status in (400, 401):
        return ("Webex refused the refresh_token: it has expired (after 90 days unused) or the app's authorisation "
                "was revoked. Authorise the app again (a Control Hub admin, for a Service App) and paste the new "
                "refresh_token into the connection settings.")
    return (f"Webex refused to renew the access token: {err.provider_message} (HTTP {err.http_status}). Check the "
            "app on developer.webex.com and its authorisation in Control Hub.")


def _json_or_none(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.IGNORECASE)


def next_link(header: str | None) -> str | None:
    """The `rel="next"` URL of an RFC 5988 `Link` header (Webex's pagination, §3.7), or None on the last page."""
    if not header:
        return None
    found = _NEXT.search(header)
    return found.group(1) if found else None


# ---------------------------------------------------------------------------------------------------------------
# The client


class WebexClient:
    """Webex's REST API for one organisation. Use `async with WebexClient(settings) as webex:` or `aclose()`.

    Every method takes `budget`: `INTERACTIVE` (a person is waiting) or `BULK` (background jobs). Errors are
    `ProviderFailed` subclasses with admin-readable messages.
    """

    def __init__(
        self,
        settings: WebexSettings,
        *,
        limits: RateLimits | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_settings_change: SettingsSink | None = None,
    ) -> None:
        self.settings = settings
        account = settings.client_id or "access-token"
        self.http = ProviderHttp(PROVIDER, display_name="Webex", account=account, base_url=settings.api_base_url,
                                 limits=limits, breaker=breaker, transport=transport)
        self.tokens = WebexTokenProvider(self.http, settings, clock=clock, on_settings_change=on_settings_change)
        self.http.auth = self.tokens

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _host_param(self, host: str | None) -> dict[str, str]:
        return {"hostEmail": host} if host and self.settings.act_for_hosts else {}

    async def _call(self, method: str, path: str, *, operation: str, budget: Budget,
                    params: Mapping[str, Any] | None = None, json: Any = None, idempotent: bool | None = None,
                    headers: Mapping[str, str] | None = None) -> httpx2.Response:
        try:
            return await self.http.request(method, path, operation=operation, params=params, json=json,
                                           budget=budget, idempotent=idempotent, headers=headers)
        except ProviderCallFailed as err:
            raise _explain(err, operation=operation) from None

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(method, path, **kwargs)
        body = _json_or_none(response)
        if not isinstance(body, dict):
            raise ProviderFailed(PROVIDER, f"Webex answered with something that is not a JSON object while "
                                           f"viltbridge tried to {kwargs['operation']} (HTTP "
                                           f"{response.status_code}); check api_base_url.")
        return body

    # -- people ---------------------------------------------------------------------------------------------

    async def find_person(self, email: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any] | None:
        """`GET /people?email=`: the person (`id`, `emails`, `displayName`, `licenses`, `siteUrls`, and for admins
        `loginEnabled`; `status` is presence, not account state), or
        None when the organisation has nobody with that email."""
        body = await self._json("GET", "/people", params={"email": email}, budget=budget,
                                operation=f"look up the Webex user {email}")
        items = [item for item in body.get("items") or [] if isinstance(item, dict)]
        return items[0] if items else None

    # -- meetings -------------------------------------------------------------------------------------------

    async def create_meeting(self, body: Mapping[str, Any], *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /meetings` (200): the meeting series with `id`, `meetingNumber`, `webLink`, `hostEmail`, ...
        Never repeated after an ambiguous failure: a second call would make a second meeting."""
        return await self._json("POST", "/meetings", json=dict(body), budget=budget,
                                operation=f"create a meeting for host {body.get('hostEmail') or 'the app user'}")

    async def get_meeting(self, meeting_id: str, *, host: str | None = None,
                          budget: Budget = INTERACTIVE) -> dict[str, Any]:
        return await self._json("GET", f"/meetings/{quote(meeting_id, safe='')}", params=self._host_param(host),
                                budget=budget, operation=f"read the Webex meeting {meeting_id}")

    async def update_meeting(self, meeting_id: str, changes: Mapping[str, Any], *,
                             budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`PATCH /meetings/{meetingId}` (200 with the meeting): the `webLink` stays the same."""
        return await self._json("PATCH", f"/meetings/{quote(meeting_id, safe='')}", json=dict(changes),
                                idempotent=True, budget=budget, operation=f"update the Webex meeting {meeting_id}")

    async def delete_meeting(self, meeting_id: str, *, host: str | None = None, missing_ok: bool = False,
                             budget: Budget = INTERACTIVE) -> None:
        """`DELETE /meetings/{meetingId}` (204), without Webex's cancellation emails (the LMS informs people)."""
        params = {**self._host_param(host), "sendEmail": "false"}
        try:
            await self._call("DELETE", f"/meetings/{quote(meeting_id, safe='')}", params=params, budget=budget,
                             operation=f"delete the Webex meeting {meeting_id}")
        except ProviderApiError as err:
            if not (missing_ok and err.http_status in (404, 410)):
                raise

    async def add_invitee(self, meeting_id: str, email: str, display_name: str, *, cohost: bool,
                          host: str | None = None, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /meetingInvitees` (200): an invitee, as cohost when `cohost`. Already invited (409) is fine."""
        body = {"meetingId": meeting_id, "email": email, "displayName": display_name, "coHost": cohost,
                "sendEmail": False, **self._host_param(host)}
        try:
            return await self._json("POST", "/meetingInvitees", json=body, idempotent=True, budget=budget,
                                    operation=f"invite {email} to the Webex meeting {meeting_id}")
        except ProviderApiError as err:
            if err.http_status == 409:
                return {"email": email, "coHost": cohost, "meetingId": meeting_id}
            raise

    async def find_series(self, integration_tag: str, *, host: str | None, start: datetime, end: datetime,
                          budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /meetings?integrationTag=` within [start, end): the series this app tagged so (a tag is visible
        only to the app that set it)."""
        params = {"integrationTag": integration_tag, "from": _z(start), "to": _z(end), "max": PAGE_SIZE,
                  **self._host_param(host)}
        return [item async for item in self._pages("/meetings", params, budget=budget,
                                                   operation=f"look for the meeting tagged {integration_tag}")]

    def meeting_instances(self, series_id: str, *, host: str | None = None,
                          budget: Budget = BULK) -> AsyncIterator[dict[str, Any]]:
        """`GET /meetings?meetingType=meeting&meetingSeriesId=`: the series' instances (held or being held), each
        with its `{seriesId}_I_{n}` id and `state`. Ended ones appear only ~15 minutes after they end (§3.2)."""
        params = {"meetingType": "meeting", "meetingSeriesId": series_id, "max": PAGE_SIZE,
                  **self._host_param(host)}
        return self._pages("/meetings", params, budget=budget,
                           operation=f"list the held instances of the Webex meeting {series_id}")

    async def join_links(self, meeting_id: str, *, email: str, display_name: str, host: str | None = None,
                         budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /meetings/join` with `joinDirectly: false` (else Webex answers a 302): `joinLink` for this person,
        `startLink` when they are the host or a cohost, and `expiration`."""
        body = {"meetingId": meeting_id, "email": email, "displayName": display_name, "joinDirectly": False,
                "expirationMinutes": self.settings.link_minutes, **self._host_param(host)}
        return await self._json("POST", "/meetings/join", json=body, idempotent=True, budget=budget,
                                operation=f"make a personal link to the Webex meeting {meeting_id} for {email}")

    def participants(self, meeting_id: str, *, host: str | None = None,
                     budget: Budget = BULK) -> AsyncIterator[dict[str, Any]]:
        """`GET /meetingParticipants?meetingId=` (an instance id for one run), every page, times in UTC."""
        params = {"meetingId": meeting_id, "max": PAGE_SIZE, **self._host_param(host)}
        return self._pages("/meetingParticipants", params, budget=budget, headers={"timezone": "UTC"},
                           operation=f"read the participants of the Webex meeting {meeting_id}")

    async def _pages(self, path: str, params: Mapping[str, Any], *, operation: str, budget: Budget,
                     headers: Mapping[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Items of a listing over every page: the next page is the `Link: <...>; rel="next"` URL as given."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        while url is not None:
            response = await self._call("GET", url, params=query, budget=budget, operation=operation,
                                        headers=headers)
            body = _json_or_none(response)
            for item in (body.get("items") or []) if isinstance(body, dict) else []:
                if isinstance(item, dict):
                    yield item
            url, query = next_link(response.headers.get("link")), None  # the next URL carries its own query


# ---------------------------------------------------------------------------------------------------------------
# Webex's errors, in words an admin can act on


def _explain(err: ProviderCallFailed, *, operation: str) -> ProviderCallFailed:
    if err.explained or not isinstance(err, ProviderApiError):
        return err
    status, said = err.http_status, _webex_message(err)
    prefix = f"Webex could not {operation}"
    if status == 401:
        return err.with_message(f"{prefix}: Webex rejected viltbridge's access token even after renewing it. The "
                                "app's authorisation may have been revoked; authorise it again and update the "
                                "refresh_token.")
    if status == 403:
        return err.with_message(f"{prefix}: the app is not allowed to ({said}). Check that it has the meeting "
                                "scopes (meeting:admin_schedule_write, meeting:admin_participants_read, "
                                "spark:people_read) and that a Control Hub admin authorised it for this org.")
    if status in (404, 410):
        return err.with_message(f"{prefix}: it does not exist at Webex (it may have been deleted there). {said}")
    if status == 400:
        return err.with_message(f"{prefix}: Webex says the request is invalid: {said}")
    if status == 423:
        return err.with_message(f"{prefix}: Webex has locked the resource for now ({said}); try again shortly.")
    if status == 429:
        return err  # ProviderHttp's message already says how long Webex asked to wait
    return err.with_message(f"{prefix}: {said} (HTTP {status}).", explained=False)


def _webex_message(err: ProviderApiError) -> str:
    """Webex's `{"message", "errors": [{"description"}], "trackingId"}`: the descriptions, and the tracking id that
    Webex support asks for."""
    body = err.body if isinstance(err.body, dict) else {}
    parts = [str(body.get("message") or err.provider_message or f"HTTP {err.http_status}")]
    details = [str(e.get("description")) for e in body.get("errors") or [] if isinstance(e, dict)
               and e.get("description")]
    if details:
        parts.append("; ".join(details[:5]))
    if body.get("trackingId"):
        parts.append(f"Webex tracking id {body['trackingId']}")
    return " — ".join(parts)
