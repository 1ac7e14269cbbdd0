"""Zoom's REST client (Meetings API v2 with Server-to-Server OAuth), on top of `providers.http`.

- `ZoomSettings` (in settings.py): what an admin configures per connection (validated with readable messages).
- `ZoomTokenProvider`: `account_credentials` tokens, cached and refreshed 5 minutes early; concurrent callers share
  one token request, and a 401 makes the first caller fetch a new token and the others reuse it.
- `ZoomClient`: typed methods for the endpoints the adapter needs, each spending a slot of the account's Light,
  Medium or Heavy rate-limit bucket (docs/providers.md §1.3-1.8; per plan), plus the per-host daily cap of 100
  meeting creates/updates. Zoom's error codes become messages an admin can act on (`ProviderApiError` keeps
  Zoom's own status, code and message for code that branches on them).

Facts and their confidence marks are in docs/providers.md §1 and docs/field-notes.md §4.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal, Self
from urllib.parse import quote

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
    Quota,
    RateLimitExceeded,
    RateLimits,
    token_answer,
)
from viltbridge.providers.zoom.settings import ZoomSettings

__all__ = [
    "HOST_DAILY_MEETING_WRITES", "PLAN_LIMITS", "EndpointClass", "ZoomClient", "ZoomTokenProvider",
    "meeting_path_id",
]

log = logging.getLogger("viltbridge.providers.zoom")

PROVIDER = "zoom"


# ---------------------------------------------------------------------------------------------------------------
# Rate limits (docs/providers.md §1.8, field-notes §4): per account, shared by all apps on it.


class EndpointClass(StrEnum):
    LIGHT = "Light"
    MEDIUM = "Medium"
    HEAVY = "Heavy"


# plan -> class -> (calls per second, calls per UTC day or None). On Pro and Business only Heavy (with
# Resource-intensive) has a daily cap: one pool of 30,000 / 60,000 a day.
PLAN_LIMITS: dict[str, dict[EndpointClass, tuple[int, int | None]]] = {
    "free": {EndpointClass.LIGHT: (4, 6000), EndpointClass.MEDIUM: (2, 2000), EndpointClass.HEAVY: (1, 1000)},
    "pro": {EndpointClass.LIGHT: (30, None), EndpointClass.MEDIUM: (20, None), EndpointClass.HEAVY: (10, 30000)},
    "business": {EndpointClass.LIGHT: (80, None), EndpointClass.MEDIUM: (60, None),
                 EndpointClass.HEAVY: (40, 60000)},
}
HOST_DAILY_MEETING_WRITES = 100  # meeting creates + updates per host per UTC day
# Zoom counts per calendar second on its clock, so slots are counted the same way: the limit per calendar second
# (UTC, this server's clock), none in the last SECOND_GUARD of a second, so a call that takes up to that long to
# reach Zoom (the network, the offset between the two clocks) is still counted in the second that let it through;
# and bursts of a third of the limit spread over the rest of the second, so a burst does not reach Zoom as one lump.
# (Before issue 16 a sliding 1.1 s window absorbed the delays, and with them 10% of every limit.)
SECOND_GUARD = 0.2
DAY = 86400.0

LIGHT, MEDIUM, HEAVY = EndpointClass.LIGHT, EndpointClass.MEDIUM, EndpointClass.HEAVY


def meeting_path_id(meeting: int | str) -> str:
    """A meeting number or instance UUID as a path segment. UUIDs are base64 and may hold `/`, `+`, `=`; Zoom wants
    them double URL-encoded when they start with `/` or contain `//` (docs/providers.md §1.2)."""
    value = str(meeting)
    if value.isdigit():
        return value
    encoded = quote(value, safe="")
    if value.startswith("/") or "//" in value:
        encoded = quote(encoded, safe="")
    return encoded


# ---------------------------------------------------------------------------------------------------------------
# Token provider


class ZoomTokenProvider(CachedBearerToken):
    """Server-to-Server OAuth (`grant_type=account_credentials`): one-hour tokens without refresh tokens."""

    provider_kind = "zoom"

    def __init__(self, http: ProviderHttp, settings: ZoomSettings, *, clock: Callable[[], float] = time.monotonic,
                 refresh_margin: float = 300.0) -> None:
        super().__init__(clock=clock, refresh_margin=refresh_margin)
        self._http = http
        self._settings = settings

    async def fetch(self) -> tuple[str, float]:
        settings = self._settings
        basic = base64.b64encode(
            f"{settings.client_id}:{settings.client_secret.get_secret_value()}".encode()).decode()
        try:
            response = await self._http.request(
                "POST", settings.oauth_token_url, operation="get an access token",
                data={"grant_type": "account_credentials", "account_id": settings.account_id},
                headers={"Authorization": f"Basic {basic}"}, authenticate=False, use_breaker=False,
                idempotent=True, budget=INTERACTIVE)
        except ProviderApiError as err:
            raise err.with_message(_explain_token_error(err, settings)) from None
        token, lifetime, _ = token_answer(PROVIDER, response, settings.oauth_token_url, "oauth_token_url")
        return token, lifetime


def _explain_token_error(err: ProviderApiError, settings: ZoomSettings) -> str:
    code = str(err.code or "")
    text = err.provider_message.lower()
    if code == "invalid_client" or ("client" in text and ("invalid" in text or "secret" in text)):
        return ("Zoom refused viltbridge's app credentials: the client_id or client_secret is wrong. Copy both from "
                "the Server-to-Server OAuth app's App Credentials page in Zoom Marketplace.")
    if code == "unsupported_grant_type" or "grant type" in text:
        return ("Zoom refused the account_credentials grant: the client_id/client_secret belong to an app that is "
                "not a Server-to-Server OAuth app (or it is not activated). Create or activate a Server-to-Server "
                "OAuth app in Zoom Marketplace and use its credentials.")
    if "account" in text:
        return (f"Zoom refused the account_id {settings.account_id!r} for this app. Copy the Account ID from the "
                "app's App Credentials page in Zoom Marketplace.")
    return (f"Zoom refused to issue an access token: {err.provider_message} (HTTP {err.http_status}). Check the "
            "Server-to-Server OAuth app in Zoom Marketplace (activated, credentials copied correctly).")


# ---------------------------------------------------------------------------------------------------------------
# The client


class ZoomClient:
    """Zoom's REST API for one account. Use `async with ZoomClient(settings) as zoom:` or call `aclose()`.

    Every method takes `budget`: `INTERACTIVE` (the default; a person is waiting) or `BULK` (background jobs; the
    default of the report iterator). Errors are `ProviderFailed` subclasses with admin-readable messages.
    """

    def __init__(
        self,
        settings: ZoomSettings,
        *,
        limits: RateLimits | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        host_daily_meeting_writes: int = HOST_DAILY_MEETING_WRITES,
    ) -> None:
        self.settings = settings
        self.host_daily_meeting_writes = host_daily_meeting_writes
        self.http = ProviderHttp(PROVIDER, display_name="Zoom", account=settings.account_id,
                                 base_url=settings.api_base_url, limits=limits, breaker=breaker, transport=transport)
        self.tokens = ZoomTokenProvider(self.http, settings, clock=clock)
        self.http.auth = self.tokens

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], **kwargs: Any) -> ZoomClient:
        return cls(ZoomSettings.from_settings(raw), **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- plumbing -------------------------------------------------------------------------------------------

    def quotas(self, endpoint_class: EndpointClass, *, host: str | None = None) -> tuple[Quota, ...]:
        """The buckets one call spends a slot of: the class's per-second limit, its daily cap (if the plan has one)
        and, for meeting creates/updates, the host's daily cap."""
        account, plan = self.settings.account_id, self.settings.plan
        per_second, per_day = PLAN_LIMITS[plan][endpoint_class]
        name = endpoint_class.value
        quotas = [Quota(f"zoom:{account}:{name}:second", per_second, 1.0, aligned=True, guard=SECOND_GUARD,
                        burst=max(1, per_second // 3),
                        label=f"Zoom's {name} API rate limit ({per_second} calls a second on the {plan} plan)")]
        if per_day is not None:
            quotas.append(Quota(f"zoom:{account}:{name}:day", per_day, DAY, aligned=True,
                                label=f"Zoom's daily limit of {per_day:,} {name} API calls for this account"))
        if host is not None:
            limit = self.host_daily_meeting_writes
            quotas.append(Quota(f"zoom:{account}:host:{host.lower()}:meeting-writes", limit, DAY, aligned=True,
                                label=f"Zoom's daily limit of {limit} meeting creates/updates for host {host}"))
        return tuple(quotas)

    async def _call(
        self,
        method: str,
        path: str,
        endpoint_class: EndpointClass,
        *,
        operation: str,
        budget: Budget,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        host: str | None = None,
        host_quota: bool = False,
        meeting: int | str | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One API call: the parsed JSON body, or None for 204."""
        try:
            response = await self.http.request(
                method, path, operation=operation, params=params, json=json, budget=budget, idempotent=idempotent,
                quotas=self.quotas(endpoint_class, host=host if host_quota else None))
        except ProviderCallFailed as err:
            raise _explain(err, operation=operation, host=host, meeting=meeting) from None
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderFailed(PROVIDER, f"Zoom answered with something that is not JSON while viltbridge tried to "
                                           f"{operation} (HTTP {response.status_code}); check api_base_url.") from None

    # -- users ----------------------------------------------------------------------------------------------

    async def get_user(self, user: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`GET /users/{userId}` (id or email): `id`, `email`, `type` (1 Basic, 2 Licensed, ...), `status`, ..."""
        return dict(await self._call("GET", f"/users/{quote(user, safe='@')}", LIGHT, host=user, budget=budget,
                                     operation=f"look up the Zoom user {user}"))

    async def create_user(self, email: str, *, first_name: str = "", last_name: str = "", user_type: int = 2,
                          action: str = "create", budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /users`; `action` create (Zoom mails an activation link), autoCreate, custCreate or ssoCreate.
        A user who already exists (a repeated call) is looked up and returned instead."""
        body = {"action": action, "user_info": {"email": email, "type": user_type, "first_name": first_name,
                                                "last_name": last_name}}
        try:
            return dict(await self._call("POST", "/users", MEDIUM, json=body, host=email, budget=budget,
                                         operation=f"create the Zoom user {email}"))
        except ProviderApiError as err:
            if err.http_status == 409:
                return await self.get_user(email, budget=budget)
            raise

    async def update_user(self, user: str, changes: Mapping[str, Any], *, budget: Budget = INTERACTIVE) -> None:
        """`PATCH /users/{userId}` (204): first_name, last_name, type, timezone, dept, ..."""
        await self._call("PATCH", f"/users/{quote(user, safe='@')}", LIGHT, json=dict(changes), host=user,
                         idempotent=True, budget=budget, operation=f"update the Zoom user {user}")

    async def set_user_status(self, user: str, action: Literal["activate", "deactivate"], *,
                              budget: Budget = INTERACTIVE) -> None:
        """`PUT /users/{userId}/status` (204): a deactivated user cannot sign in or host, and keeps their data."""
        await self._call("PUT", f"/users/{quote(user, safe='@')}/status", LIGHT, json={"action": action},
                         host=user, idempotent=True, budget=budget, operation=f"{action} the Zoom user {user}")

    # -- meetings -------------------------------------------------------------------------------------------

    async def create_meeting(self, host: str, body: Mapping[str, Any], *,
                             budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /users/{userId}/meetings` (201): the meeting with `id`, `uuid`, `join_url`, `start_url`, ...
        Never repeated after an ambiguous failure (it would create a second meeting): the error says so."""
        return dict(await self._call("POST", f"/users/{quote(host, safe='@')}/meetings", MEDIUM, json=dict(body),
                                     host=host, host_quota=True, budget=budget,
                                     operation=f"create a meeting for host {host}"))

    def list_user_meetings(self, user: str, *,
                           type: Literal["scheduled", "live", "upcoming", "upcoming_meetings",
                                         "previous_meetings"] = "scheduled",
                           budget: Budget = INTERACTIVE) -> AsyncIterator[dict[str, Any]]:
        """`GET /users/{userId}/meetings` (Medium), every page (300 a page): a host's meetings with `id`, `topic`,
        `start_time`, `created_at`, `join_url`, ... but no settings or tracking fields (GET the meeting for those).
        `scheduled` (Zoom's default) is every unexpired meeting; the `upcoming*` types stop six months ahead."""
        return self._pages(f"/users/{quote(user, safe='@')}/meetings", "meetings", MEDIUM, params={"type": type},
                           budget=budget, operation=f"list the meetings of host {user}")

    async def get_meeting(self, meeting_id: int | str, *, occurrence_id: str | None = None,
                          budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`GET /meetings/{meetingId}`: the meeting, with a fresh `start_url` (those expire after 2 hours)."""
        params = {"occurrence_id": occurrence_id} if occurrence_id else None
        return dict(await self._call("GET", f"/meetings/{meeting_path_id(meeting_id)}", LIGHT, params=params,
                                     meeting=meeting_id, budget=budget,
                                     operation=f"read the Zoom meeting {meeting_id}"))

    async def update_meeting(self, meeting_id: int | str, changes: Mapping[str, Any], *, host: str | None = None,
                             occurrence_id: str | None = None, budget: Budget = INTERACTIVE) -> None:
        """`PATCH /meetings/{meetingId}` (204, no body: GET it for the result). `host` (the id or email the meeting
        was created with) counts the update against that host's daily cap of creates/updates."""
        params = {"occurrence_id": occurrence_id} if occurrence_id else None
        await self._call("PATCH", f"/meetings/{meeting_path_id(meeting_id)}", LIGHT, params=params,
                         json=dict(changes), host=host, host_quota=host is not None, meeting=meeting_id,
                         idempotent=True, budget=budget, operation=f"update the Zoom meeting {meeting_id}")

    async def delete_meeting(self, meeting_id: int | str, *, occurrence_id: str | None = None,
                             notify_registrants: bool = False, missing_ok: bool = False,
                             budget: Budget = INTERACTIVE) -> None:
        """`DELETE /meetings/{meetingId}` (204). `missing_ok`: a meeting already gone (code 3001) is fine."""
        params: dict[str, Any] = {"cancel_meeting_reminder": "true" if notify_registrants else "false"}
        if occurrence_id:
            params["occurrence_id"] = occurrence_id
        try:
            await self._call("DELETE", f"/meetings/{meeting_path_id(meeting_id)}", LIGHT, params=params,
                             meeting=meeting_id, budget=budget, operation=f"delete the Zoom meeting {meeting_id}")
        except ProviderApiError as err:
            if not (missing_ok and err.http_status == 404 and err.code == 3001):
                raise

    # -- registrants ----------------------------------------------------------------------------------------

    async def add_registrant(self, meeting_id: int | str, email: str, first_name: str, last_name: str = "", *,
                             auto_approve: bool = True, extra: Mapping[str, Any] | None = None,
                             occurrence_ids: Sequence[str] = (), budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`POST /meetings/{meetingId}/registrants` (201): `registrant_id`, `join_url` (personal), ... Registering
        the same email again returns the same registrant, so this is repeated safely after an ambiguous failure."""
        body = {**(extra or {}), "email": email, "first_name": first_name or email.split("@")[0],
                "last_name": last_name, "auto_approve": auto_approve}
        params = {"occurrence_ids": ",".join(occurrence_ids)} if occurrence_ids else None
        return dict(await self._call("POST", f"/meetings/{meeting_path_id(meeting_id)}/registrants", LIGHT,
                                     params=params, json=body, meeting=meeting_id, idempotent=True, budget=budget,
                                     operation=f"register {email} for the Zoom meeting {meeting_id}"))

    async def batch_registrants(self, meeting_id: int | str, people: Sequence[Mapping[str, Any]], *,
                                auto_approve: bool = True, confirmation_email: bool = False,
                                budget: Budget = BULK) -> list[dict[str, Any]]:
        """`POST /meetings/{meetingId}/batch_registrants` in chunks of 30 (Zoom's maximum; scheduled meetings
        only). `people`: mappings with `email`, `first_name`, `last_name`. Returns Zoom's rows: `registrant_id`,
        `email`, `join_url`, `participant_pin_code`."""
        rows: list[dict[str, Any]] = []
        for start in range(0, len(people), 30):
            chunk = [{"email": p["email"], "first_name": p.get("first_name") or str(p["email"]).split("@")[0],
                      "last_name": p.get("last_name") or ""} for p in people[start:start + 30]]
            body = {"registrants": chunk, "auto_approve": auto_approve,
                    "registrants_confirmation_email": confirmation_email}
            answer = await self._call("POST", f"/meetings/{meeting_path_id(meeting_id)}/batch_registrants", HEAVY,
                                      json=body, meeting=meeting_id, idempotent=True, budget=budget,
                                      operation=f"register {len(chunk)} people for the Zoom meeting {meeting_id}")
            rows.extend(answer.get("registrants", []) if isinstance(answer, dict) else [])
        return rows

    async def list_registrants(self, meeting_id: int | str, *, status: str = "approved",
                               budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /meetings/{meetingId}/registrants`, every page (300 a page)."""
        rows: list[dict[str, Any]] = []
        async for row in self._pages(f"/meetings/{meeting_path_id(meeting_id)}/registrants", "registrants", MEDIUM,
                                     params={"status": status}, meeting=meeting_id, budget=budget,
                                     operation=f"list the registrants of the Zoom meeting {meeting_id}"):
            rows.append(row)
        return rows

    # -- after the meeting ----------------------------------------------------------------------------------

    def report_participants(self, meeting: int | str, *, page_size: int = 300,
                            budget: Budget = BULK) -> AsyncIterator[dict[str, Any]]:
        """`GET /report/meetings/{meetingId|uuid}/participants` (Heavy; Pro plan or higher): one row per join/leave
        segment, over all pages, with `registrant_id`. Pass an instance UUID (from `past_meeting_instances`) for
        one occurrence; a meeting number gives only its latest instance. `duration` 0 means "not processed yet"."""
        return self._pages(f"/report/meetings/{meeting_path_id(meeting)}/participants", "participants", HEAVY,
                           params={"include_fields": "registrant_id"}, page_size=page_size, meeting=meeting,
                           budget=budget, operation=f"read the participants report of the Zoom meeting {meeting}")

    async def past_meeting_instances(self, meeting_id: int | str, *,
                                     budget: Budget = INTERACTIVE) -> list[dict[str, Any]]:
        """`GET /past_meetings/{meetingId}/instances`: `[{"uuid", "start_time"}]` of ended instances (15 months)."""
        answer = await self._call("GET", f"/past_meetings/{meeting_path_id(meeting_id)}/instances", MEDIUM,
                                  meeting=meeting_id, budget=budget,
                                  operation=f"list the past instances of the Zoom meeting {meeting_id}")
        meetings = answer.get("meetings", []) if isinstance(answer, dict) else []
        return [dict(m) for m in meetings if isinstance(m, dict)]

    async def _pages(self, path: str, key: str, endpoint_class: EndpointClass, *, params: Mapping[str, Any],
                     operation: str, budget: Budget, meeting: int | str | None = None,
                     page_size: int = 300) -> AsyncIterator[dict[str, Any]]:
        """Rows of a cursor-paginated listing. A `next_page_token` lives 15 minutes: when one has expired (a slow
        consumer), the listing restarts from the first page and rows already yielded are skipped."""
        seen: set[tuple[Any, ...]] = set()
        restarts = 0
        token = ""
        while True:
            query = {**params, "page_size": page_size}
            if token:
                query["next_page_token"] = token
            try:
                page = await self._call("GET", path, endpoint_class, params=query, meeting=meeting, budget=budget,
                                        operation=operation)
            except ProviderApiError as err:
                if token and err.http_status == 400 and err.code == 300 and restarts < 2:
                    restarts += 1
                    log.info("zoom: next_page_token expired while reading %s; restarting from the first page", path)
                    token = ""
                    continue
                raise
            page = page if isinstance(page, dict) else {}
            for row in page.get(key) or []:
                if not isinstance(row, dict):
                    continue
                identity = (row.get("id"), row.get("user_id"), row.get("registrant_id"), row.get("name"),
                            row.get("user_email"), row.get("email"), row.get("join_time"))
                if identity in seen:
                    continue
                seen.add(identity)
                yield row
            token = str(page.get("next_page_token") or "")
            if not token:
                return


# ---------------------------------------------------------------------------------------------------------------
# Zoom's errors, in words an admin can act on


_HOST_DAILY = re.compile(r"daily rate limit \((\d+)\) of meeting create/update", re.IGNORECASE)


def _explain(err: ProviderCallFailed, *, operation: str, host: str | None,
             meeting: int | str | None) -> ProviderCallFailed:
    if err.explained:
        return err
    if isinstance(err, RateLimitExceeded):
        return err  # our own limiter's message already names the limit and when it frees up
    if not isinstance(err, ProviderApiError):
        return err
    code, status, said = err.code, err.http_status, err.provider_message
    who = f"host {host}" if host else "the meeting's host"
    prefix = f"Zoom could not {operation}"
    if status == 429:
        daily_host = _HOST_DAILY.search(said)
        if daily_host:
            return err.with_message(
                f"{prefix}: Zoom's daily limit of {daily_host.group(1)} meeting creates/updates for {who} is used up "
                f"until 00:00 UTC. Try again after midnight UTC, or use another host for new sessions.")
        if (err.rate_limit_type or "").lower().startswith("daily"):
            return err.with_message(
                f"{prefix}: Zoom's daily API limit for this account is used up until 00:00 UTC ({said}). Try again "
                "after midnight UTC; a higher Zoom plan has higher limits.")
        return err
    if code == 1001 and "user" in said.lower():
        return err.with_message(
            f"{prefix}: {who} is not a user on this Zoom account. Add them in Zoom (User Management > Users) or "
            "set the connection's host_policy to 'create'.")
    if code == 1001 or code == 3001:
        return err.with_message(
            f"{prefix}: Zoom meeting {meeting} does not exist (it may have been deleted in Zoom).")
    if code == 3161:
        return err.with_message(
            f"{prefix}: {who} is not a licensed Zoom user on this account (or is not active), so they cannot host "
            "meetings. Give them a Licensed user type in Zoom (User Management > Users) or choose another host.")
    if code == 124 or status == 401:
        return err.with_message(
            f"{prefix}: Zoom rejected viltbridge's access token even after a new one was issued. The Server-to-"
            "Server OAuth app may have been deactivated; check it in Zoom Marketplace.")
    if code == 4700:
        return err.with_message(
            f"{prefix}: the Zoom app lacks a permission this needs ({said}). Add the scope on the app's Scopes page "
            "in Zoom Marketplace.")
    if code == 200 and status == 400:
        return err.with_message(f"{prefix}: this needs a paid Zoom plan (Pro or higher) on the account ({said}).")
    if code == 12702:
        return err.with_message(f"{prefix}: Zoom keeps meeting reports for one year only, and this meeting is older.")
    if code == 3000 or code == 300 or code == 404:
        return err.with_message(f"{prefix}: {said}")
    if code == 1005 or status == 409:
        return err.with_message(f"{prefix}: that user already exists on the Zoom account ({said}).")
    return err
