"""BigBlueButton's HTTP API client (docs/providers.md §4), on top of `providers.http`.

- `BbbSettings` (in settings.py): one BBB server (or Scalelite) and its shared secret.
- `checksum` / `signed_url`: every call is authenticated by `hex(HASH(callName + queryString + secret))` over the
  exact, already encoded query string, so the query is encoded once here and sent as it was hashed.
- `BbbClient`: typed calls. BBB answers HTTP 200 with XML even when it refuses (`returncode` FAILED plus
  `messageKey`/`message`); those become `BbbApiError` with a message an admin can act on.
"""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlencode

import httpx2
import pybreaker

from viltbridge.core.errors import ProviderFailed
from viltbridge.providers.bbb.settings import Algorithm, BbbSettings
from viltbridge.providers.http import INTERACTIVE, Budget, ProviderApiError, ProviderHttp, RateLimits

__all__ = ["BbbApiError", "BbbClient", "checksum", "query_string", "signed_url"]

log = logging.getLogger("viltbridge.providers.bbb")

PROVIDER = "bbb"
# Elements whose children are a list of like items (everything else becomes a mapping or a text value).
LIST_ELEMENTS = frozenset({"attendees", "meetings", "recordings", "breakoutRooms", "playback", "hooks"})


def query_string(params: Mapping[str, str]) -> str:
    """The query exactly as it is sent and hashed (form encoding: spaces as `+`, like BBB's own examples)."""
    return urlencode(list(params.items()))


def checksum(call: str, query: str, secret: str, algorithm: Algorithm = "sha256") -> str:
    """`hex(HASH(callName + queryString + sharedSecret))` (§4.1); `query` without the checksum parameter."""
    return hashlib.new(algorithm, (call + query + secret).encode("utf-8")).hexdigest()


def signed_url(settings: BbbSettings, call: str, params: Mapping[str, str]) -> str:
    query = query_string(params)
    digest = checksum(call, query, settings.shared_secret.get_secret_value(), settings.checksum_algorithm)
    return f"{settings.api_url}{call}?{query}{'&' if query else ''}checksum={digest}"


class BbbApiError(ProviderApiError):
    """BBB answered FAILED: `code` is its messageKey (e.g. `notFound`), `provider_message` its message."""


def _explain(key: str, message: str, operation: str) -> str:
    if key == "checksumError":
        return (f"BigBlueButton refused viltbridge's checksum while viltbridge tried to {operation}: the shared_secret "
                "is wrong (copy it from `bbb-conf --secret` on the server) or the server does not accept "
                "checksum_algorithm (see supportedChecksumAlgorithms in bbb-web.properties).")
    if key in ("notFound", "invalidMeetingIdentifier"):
        return (f"BigBlueButton has no running meeting with that ID, so viltbridge could not {operation}. BBB "
                "meetings exist only while in use; it is created again when someone launches it.")
    return f"BigBlueButton refused to {operation}: {message or 'no reason given'} ({key or 'no messageKey'})."


def _element(node: ET.Element) -> Any:
    children = list(node)
    if not children:
        return (node.text or "").strip()
    if node.tag in LIST_ELEMENTS:
        return [_element(child) for child in children]
    return {child.tag: _element(child) for child in children}


def parse_response(text: str, operation: str) -> dict[str, Any]:
    """The `<response>` as a dict, or BbbApiError when BBB says FAILED, or ProviderFailed when it is not BBB."""
    try:
        # The admin's own BBB server answers here, and expat refuses entity-expansion bombs.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError:
        raise ProviderFailed(PROVIDER, f"The server did not answer with BigBlueButton's XML while viltbridge tried to "
                                       f"{operation}; check server_url (it ends in /bigbluebutton/).") from None
    body = _element(root)
    if root.tag != "response" or not isinstance(body, dict) or "returncode" not in body:
        raise ProviderFailed(PROVIDER, f"The server's answer is not a BigBlueButton API response ({operation}); "
                                       "check server_url.")
    if body["returncode"] != "SUCCESS":
        key, message = str(body.get("messageKey") or ""), str(body.get("message") or "")
        raise BbbApiError(PROVIDER, _explain(key, message, operation), http_status=200, code=key,
                          provider_message=message, body=body, operation=operation)
    return body


class BbbClient:
    """BBB's API for one server. BBB publishes no rate limits and sends no 429s, so there is no bucket here."""

    def __init__(self, settings: BbbSettings, *, limits: RateLimits | None = None,
                 breaker: pybreaker.CircuitBreaker | None = None,
                 transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.http = ProviderHttp(PROVIDER, display_name="BigBlueButton", account=settings.api_url, limits=limits,
                                 breaker=breaker, transport=transport, headers={"Accept": "application/xml"})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def call(self, name: str, params: Mapping[str, str], *, operation: str,
                   budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """GET one signed API call. Every call used here is safe to repeat (create is idempotent by meetingID)."""
        response = await self.http.request("GET", signed_url(self.settings, name, params), operation=operation,
                                           budget=budget, idempotent=True)
        return parse_response(response.text, operation)

    async def create(self, params: Mapping[str, str], *, budget: Budget = INTERACTIVE) -> dict[str, Any]:
        """`create`: the meeting, new or already there (`duplicateWarning` is still SUCCESS)."""
        return await self.call("create", params, operation=f"create the meeting {params.get('meetingID')}",
                               budget=budget)

    async def end(self, meeting_id: str, *, budget: Budget = INTERACTIVE) -> bool:
        """`end`: True when BBB accepted; False when no such meeting runs (already over or never started)."""
        try:
            await self.call("end", {"meetingID": meeting_id}, operation=f"end the meeting {meeting_id}", budget=budget)
        except BbbApiError as err:
            if err.code == "notFound":
                return False
            raise
        return True

    async def meeting_info(self, meeting_id: str, *, budget: Budget = INTERACTIVE) -> dict[str, Any] | None:
        """`getMeetingInfo`: the live meeting, or None (BBB forgets ended meetings: `notFound`)."""
        try:
            return await self.call("getMeetingInfo", {"meetingID": meeting_id},
                                   operation=f"read the meeting {meeting_id}", budget=budget)
        except BbbApiError as err:
            if err.code == "notFound":
                return None
            raise

    def join_url(self, params: Mapping[str, str]) -> str:
        """A signed `join` URL (no request: the browser takes it to BBB)."""
        return signed_url(self.settings, "join", params)
