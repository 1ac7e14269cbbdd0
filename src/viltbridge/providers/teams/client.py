"""Microsoft Graph's REST client for Teams online meetings, on top of `providers.http`.

- `TeamsSettings` (in settings.py): one Entra (Azure AD) app registration in one tenant.
- `GraphTokenProvider`: client-credentials tokens for that tenant, cached and renewed 5 minutes early; concurrent
  callers share one token request, and a 401 makes the first caller fetch a new token and the others reuse it.
- `TeamsClient`: typed methods for the Graph endpoints the adapter needs (docs/providers.md §2). Graph's errors
  become messages an admin can act on: above all the missing Teams application access policy, which names the
  exact policy and user to grant it to.

Graph answers 429 (sometimes 503) with `Retry-After` in seconds; `ProviderHttp` honours it within the call's budget.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import quote, unquote

import httpx2
import pybreaker

from viltbridge.core.errors import ProviderFailed
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
from viltbridge.providers.teams.settings import TeamsSettings

__all__ = ["GraphTokenProvider", "TeamsClient", "graph_time", "parse_graph_time"]

log = logging.getLogger("viltbridge.providers.teams")

PROVIDER = "teams"


# ---------------------------------------------------------------------------------------------------------------
# Graph timestamps: ISO-8601 UTC with up to 7 fractional digits (2021-10-05T04:38:27.6027225Z)

_GRAPH_TIME = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?$")


def parse_graph_time(value: str | None) -> datetime | None:
    """A Graph timestamp as an aware UTC datetime, fractions beyond microseconds dropped (Python keeps six digits);
    None for empty values. A value without a zone is UTC, as Graph's onlineMeeting times are."""
    if not value:
        return None
    match = _GRAPH_TIME.match(value.strip())
    if match is None:
        raise ValueError(f"not a Graph timestamp: {value!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or "Z"
    moment = datetime.fromisoformat(f"{match['base']}.{fraction}{'+00:00' if zone == 'Z' else zone}")
    return moment.astimezone(UTC)


def graph_time(moment: datetime) -> str:
    """As Graph writes times: UTC, seven fractional digits (the last is always 0: Python has microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# ---------------------------------------------------------------------------------------------------------------
# Token provider


class GraphTokenProvider(CachedBearerToken):
    """Entra client credentials (`grant_type=client_credentials`): ~1 hour tokens, no refresh token."""

    provider_kind = "teams"

    def __init__(self, http: ProviderHttp, settings: TeamsSettings, *, clock: Callable[[], float] = time.monotonic,
                 refresh_margin: float = 300.0) -> None:
        super().__init__(clock=clock, refresh_margin=refresh_margin)
        self._http = http
        self._settings = settings

    async def fetch(self) -> tuple[str, float]:
        settings = self._settings
        form = {"grant_type": "client_credentials", "client_id": settings.client_id,
                "client_secret": settings.client_secret.get_secret_value(), "scope": settings.scope}
        try:
            response = await self._http.request(
                "POST", settings.token_url, operation="get an access token from Microsoft Entra ID", data=form,
                authenticate=False, use_breaker=False, idempotent=True, budget=INTERACTIVE)
        except ProviderApiError as err:
            raise err.with_message(_explain_token_error(err, settings)) from None
        token, lifetime, _ = token_answer(PROVIDER, response, settings.token_url, "authority_url", 3599.0)
        return token, lifetime


def _explain_token_error(err: ProviderApiError, settings: TeamsSettings) -> str:
    said = err.provider_message
    if "AADSTS90002" in said or "AADSTS900023" in said:
        return (f"Microsoft Entra ID does not know the tenant {settings.tenant_id!r}. Copy the Directory (tenant) "
                "ID from the app registration's Overview page.")
    if "AADSTS700016" in said or err.code == "unauthorized_client":
        return (f"Microsoft Entra ID does not know the app {settings.client_id!r} in tenant {settings.tenant_id}. "
                "Copy the Application (client) ID from the app registration's Overview page, and check the app is "
                "registered in that tenant.")
    if err.code == "invalid_client" or "AADSTS7000215" in said or "AADSTS7000222" in said:
        return ("Microsoft Entra ID refused viltbridge's client secret: it is wrong or has expired. Create a new "
                "client secret under the app registration's Certificates & secrets and paste its Value.")
    return (f"Microsoft Entra ID refused to issue an access token: {said} (HTTP {err.http_status}). Check the "
            "tenant_id, client_id and client_secret settings against the app registration.")


# ---------------------------------------------------------------------------------------------------------------
# The client


class TeamsClient:
    """Graph for one tenant. Use `async with TeamsClient(settings) as graph:` or call `aclose()`.

    Every method takes `budget`: `INTERACTIVE` (the default; a person is waiting) or `BULK` (background jobs).
    Errors are `ProviderFailed` subclasses with admin-readable messages.
    """

    def __init__(self, settings: TeamsSettings, *, limits: RateLimits | None = None,
                 breaker: pybreaker.CircuitBreaker | None = None, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.http = ProviderHttp(PROVIDER, display_name="Microsoft Graph", account=settings.tenant_id,
                                 base_url=settings.graph_base_url, limits=limits, breaker=breaker,
                                 transport=transport)
        self.tokens = GraphTokenProvider(self.http, settings, clock=clock)
        self.http.auth = self.tokens

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], **kwargs: Any) -> TeamsClient:
        return cls(TeamsSettings.from_settings(raw), **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, *, operation: str, budget: Budget, user: str | None = None,
                    params: Mapping[str, Any] | None = None, json: Any = None,
                    idempotent: bool | None = None) -> Any:
        """One Graph call: the parsed JSON body, or None for 204. `user`: the person the call is about, named in
        errors; the organizer's object id is read from the path."""
        try:
            response = await self.http.request(method, path, operation=operation, params=params, json=json,
                                               budget=budget, idempotent=idempotent)
        except ProviderCallFailed as err:
            raise _explain(err, self.settings, operation=operation, user=user, acting_for=_path_user(path)) from None
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderFailed(PROVIDER, f"Microsoft Graph answered with something that is not JSON while "
                                           f"viltbridge tried to {operation} (HTTP {response.status_code}); check "
                                           "graph_base_url.") from None

    # -- users ----------------------------------------------------------------------------------------------

    async def get_user(self, user: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`GET /users/{upnOrId}`: `id` (the Entra object id), `userPrincipalName`, `mail`, `accountEnabled`."""
        return dict(await self._call(
            "GET", f"/users/{_segment(user)}", params={"$select": _USER_FIELDS},
            user=user, budget=budget, operation=f"look up the Microsoft 365 user {user}"))

    async def find_users_by_mail(self, address: str, *, budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /users?$filter=mail eq '...'`: the users whose primary mail address this is (usually one, or none:
        an empty list, not a 404)."""
        return await self._find_users(f"mail eq '{_odata_string(address)}'", address, budget=budget)

    async def find_users_by_proxy_address(self, address: str, *,
                                          budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /users?$filter=proxyAddresses/any(x:x eq 'smtp:...')`: the users with this address among their
        mailbox's addresses (aliases included). Directory comparisons ignore case, so `smtp:` also finds the
        primary `SMTP:` address."""
        return await self._find_users(f"proxyAddresses/any(x:x eq 'smtp:{_odata_string(address)}')", address,
                                      budget=budget)

    async def _find_users(self, expression: str, address: str, *, budget: Budget) -> list[dict[str, Any]]:
        page = await self._call("GET", "/users", params={"$filter": expression, "$select": _USER_FIELDS},
                                budget=budget, operation=f"look up the Microsoft 365 user with the address {address}")
        rows = page.get("value") if isinstance(page, dict) else None
        return [dict(row) for row in rows or [] if isinstance(row, dict)]

    # -- online meetings ------------------------------------------------------------------------------------

    async def create_or_get_meeting(self, organizer_id: str, body: Mapping[str, Any], *, organizer: str,
                                    budget: Budget = INTERACTIVE) -> tuple[dict[str, Any], bool]:
        """`POST /users/{id}/onlineMeetings/createOrGet` with an `externalId`: 201 and a new meeting, or 200 and
        the meeting made earlier with that `externalId`. Safe to repeat, so it is retried after timeouts.
        Returns (meeting, created)."""
        response = await self._raw("POST", f"/users/{_segment(organizer_id)}/onlineMeetings/createOrGet",
                                   json=dict(body), idempotent=True, user=organizer, budget=budget,
                                   operation=f"create a Teams meeting for {organizer}")
        return dict(response.json()), response.status_code == 201

    async def get_meeting(self, organizer_id: str, meeting_id: str, *,
                          budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`GET /users/{id}/onlineMeetings/{meetingId}`."""
        return dict(await self._call("GET", _meeting_path(organizer_id, meeting_id), budget=budget,
                                     operation=f"read the Teams meeting {meeting_id}"))

    async def update_meeting(self, organizer_id: str, meeting_id: str, changes: Mapping[str, Any], *,
                             budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`PATCH /users/{id}/onlineMeetings/{meetingId}` (200 with the updated meeting). Times change as a pair and
        attendees as the full list (Graph's rules), so callers send both."""
        return dict(await self._call("PATCH", _meeting_path(organizer_id, meeting_id), json=dict(changes),
                                     idempotent=True, budget=budget,
                                     operation=f"update the Teams meeting {meeting_id}"))

    async def delete_meeting(self, organizer_id: str, meeting_id: str, *, missing_ok: bool = False,
                             budget: Budget = INTERACTIVE) -> None:
        """`DELETE /users/{id}/onlineMeetings/{meetingId}` (204). `missing_ok`: a meeting already gone is fine."""
        try:
            await self._call("DELETE", _meeting_path(organizer_id, meeting_id), budget=budget,
                             operation=f"delete the Teams meeting {meeting_id}")
        except ProviderApiError as err:
            if not (missing_ok and err.http_status == 404):
                raise

    async def find_meeting_by_join_url(self, organizer_id: str, join_url: str, *,
                                       budget: Budget = BULK) -> dict[str, Any] | None:
        """`GET /users/{id}/onlineMeetings?$filter=JoinWebUrl eq '...'`: the online meeting behind a calendar event
        (its id is what attendance reports hang off), or None."""
        quoted = join_url.replace("'", "''")  # OData string literal
        page = await self._call("GET", f"/users/{_segment(organizer_id)}/onlineMeetings", budget=budget,
                                params={"$filter": f"JoinWebUrl eq '{quoted}'"},
                                operation="find the Teams meeting of a calendar event")
        rows = page.get("value") if isinstance(page, dict) else None
        return dict(rows[0]) if rows and isinstance(rows[0], dict) else None

    # -- calendar events (calendar_events mode) -------------------------------------------------------------

    async def create_event(self, organizer_id: str, body: Mapping[str, Any], *, organizer: str,
                           budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /users/{id}/events` (201) with `isOnlineMeeting`. The body's `transactionId` makes Graph answer a
        repeated POST with the event the first one made, so it is retried after timeouts."""
        return dict(await self._call("POST", f"/users/{_segment(organizer_id)}/events", json=dict(body),
                                     idempotent="transactionId" in body, user=organizer, budget=budget,
                                     operation=f"create a Teams calendar event for {organizer}"))

    async def get_event(self, organizer_id: str, event_id: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        return dict(await self._call("GET", _event_path(organizer_id, event_id), budget=budget,
                                     operation=f"read the calendar event {event_id}"))

    async def update_event(self, organizer_id: str, event_id: str, changes: Mapping[str, Any], *,
                           budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`PATCH /users/{id}/events/{eventId}` (200 with the event); attendees are replaced as a whole."""
        return dict(await self._call("PATCH", _event_path(organizer_id, event_id), json=dict(changes),
                                     idempotent=True, budget=budget, operation=f"update the calendar event {event_id}"))

    async def cancel_event(self, organizer_id: str, event_id: str, comment: str, *, missing_ok: bool = False,
                           budget: Budget = INTERACTIVE) -> None:
        """`POST /users/{id}/events/{eventId}/cancel` (202): attendees get a cancellation and the event goes."""
        try:
            await self._call("POST", f"{_event_path(organizer_id, event_id)}/cancel", json={"comment": comment},
                             idempotent=True, budget=budget, operation=f"cancel the calendar event {event_id}")
        except ProviderApiError as err:
            if not (missing_ok and err.http_status == 404):
                raise

    # -- attendance -----------------------------------------------------------------------------------------

    def attendance_reports(self, organizer_id: str, meeting_id: str, *,
                           budget: Budget = BULK) -> AsyncIterator[dict[str, Any]]:
        """`GET .../attendanceReports`: one report per run of the meeting (each start and end), the 50 most recent
        only; `attendanceRecords` is always empty here (read them with `attendance_records`)."""
        return self._pages(f"{_meeting_path(organizer_id, meeting_id)}/attendanceReports", budget=budget,
                           operation=f"list the attendance reports of the Teams meeting {meeting_id}")

    def attendance_records(self, organizer_id: str, meeting_id: str, report_id: str, *,
                           budget: Budget = BULK) -> AsyncIterator[dict[str, Any]]:
        """`GET .../attendanceReports/{reportId}/attendanceRecords`, every page: one record per person with all
        their `attendanceIntervals`."""
        path = f"{_meeting_path(organizer_id, meeting_id)}/attendanceReports/{_segment(report_id)}/attendanceRecords"
        return self._pages(path, budget=budget,
                           operation=f"read the attendance records of the Teams meeting {meeting_id}")

    async def _pages(self, path: str, *, operation: str, budget: Budget) -> AsyncIterator[dict[str, Any]]:
        """Rows of an OData collection: `value` on each page, then `@odata.nextLink` (an absolute URL carrying its
        own query) until a page has none."""
        url: str | None = path
        while url:
            page = await self._call("GET", url, budget=budget, operation=operation)
            page = page if isinstance(page, dict) else {}
            for row in page.get("value") or []:
                if isinstance(row, dict):
                    yield row
            next_link = page.get("@odata.nextLink")
            url = str(next_link) if next_link else None

    async def _raw(self, method: str, path: str, *, operation: str, budget: Budget, user: str | None = None,
                   json: Any = None, idempotent: bool | None = None) -> httpx2.Response:
        try:
            return await self.http.request(method, path, operation=operation, json=json, budget=budget,
                                           idempotent=idempotent)
        except ProviderCallFailed as err:
            raise _explain(err, self.settings, operation=operation, user=user, acting_for=_path_user(path)) from None


def _path_user(path: str) -> str | None:
    """The `{id}` of a `/users/{id}/...` path (also inside an absolute @odata.nextLink): whom the app acts for."""
    match = re.search(r"/users/([^/?]+)/", path)
    return unquote(match[1]) if match else None


_USER_FIELDS = "id,userPrincipalName,mail,displayName,accountEnabled"


def _odata_string(value: str) -> str:
    """The inside of an OData string literal: a quote is doubled."""
    return value.replace("'", "''")


def _segment(value: str) -> str:
    return quote(value, safe="@")


def _event_path(organizer_id: str, event_id: str) -> str:
    return f"/users/{_segment(organizer_id)}/events/{_segment(event_id)}"


def _meeting_path(organizer_id: str, meeting_id: str) -> str:
    return f"/users/{_segment(organizer_id)}/onlineMeetings/{_segment(meeting_id)}"


# ---------------------------------------------------------------------------------------------------------------
# Graph's errors, in words an admin can act on

# Graph's words for a missing Teams application access policy. The current docs answer 403
# {"code": "Forbidden", "message": "No Application Access Policy found for this app"}, tenants also report the
# code "General", and older ones said "App <id> is not authorized to <action> on behalf of user <id>" with
# "Unauthorized": the words decide, whatever the code, or the admin is sent to API permissions instead.
_NO_POLICY = re.compile(r"no application access policy", re.IGNORECASE)
_NOT_AUTHORIZED = re.compile(r"not authorized to .+ on behalf of user (?P<user>\S+)", re.IGNORECASE)


def access_policy_instructions(settings: TeamsSettings, user: str) -> str:
    """The two PowerShell commands a Teams admin runs (MicrosoftTeams module) so the app may act for `user`."""
    policy = settings.access_policy_name
    return (f"In Teams PowerShell run once: New-CsApplicationAccessPolicy -Identity {policy} -AppIds "
            f"{settings.client_id} -Description \"viltbridge\"; then grant it to the user: "
            f"Grant-CsApplicationAccessPolicy -PolicyName {policy} -Identity {user} (or -Global for every user). "
            "It can take up to 30 minutes to take effect.")


def _explain(err: ProviderCallFailed, settings: TeamsSettings, *, operation: str, user: str | None,
             acting_for: str | None = None) -> ProviderCallFailed:
    if err.explained or not isinstance(err, ProviderApiError):
        return err
    status, code, said = err.http_status, str(err.code or ""), err.provider_message
    prefix = f"Microsoft Graph would not let viltbridge {operation}"
    refused = _NOT_AUTHORIZED.search(said)
    if _NO_POLICY.search(said) or (status == 403 and (refused or code == "Unauthorized")):
        # Graph's current message names nobody: the user is the organizer in the request path (an object id,
        # which Grant-CsApplicationAccessPolicy takes), with the email viltbridge knows them by alongside.
        who = refused["user"].rstrip(".") if refused else (acting_for or user or "<the instructor's object id>")
        known_as = f" ({user})" if user and user != who else ""
        return err.with_message(
            f"{prefix}: the app {settings.client_id} has no Teams application access policy for user {who}"
            f"{known_as}, so Graph refused ({said}). Teams requires the policy {settings.access_policy_name} "
            f"to allow the app to act for that user. {access_policy_instructions(settings, who)}")
    if status == 403:
        return err.with_message(
            f"{prefix}: the app lacks an application permission ({said}). In the app registration's API "
            "permissions add OnlineMeetings.ReadWrite.All, OnlineMeetingArtifact.Read.All and User.Read.All "
            "(Application), plus Calendars.ReadWrite when calendar_events is on, and grant admin consent.")
    if status == 404 and user is not None and code == "Request_ResourceNotFound":
        return err.with_message(f"{prefix}: {user} is not a user in the Microsoft 365 tenant {settings.tenant_id}.")
    if status == 401:
        return err.with_message(
            f"{prefix}: Graph rejected viltbridge's access token even after a new one was issued ({said}). Check "
            "that admin consent was granted to the app's application permissions.")
    return err
