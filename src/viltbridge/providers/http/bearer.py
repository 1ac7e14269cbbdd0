"""OAuth bearer tokens for `ProviderHttp`'s `Auth`: `CachedBearerToken` caches, renews and shares them, and
`token_answer` reads a token endpoint's answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2

from viltbridge import metrics
from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import HealthItem, SettingsSink
from viltbridge.providers.http.errors import ProviderApiError
from viltbridge.providers.http.logs import log


class CachedBearerToken:
    """The `Auth` of a provider whose tokens come from a token endpoint: a token is cached until shortly before it
    expires, fetched by one caller at a time (the others wait and reuse it), and fetched again once when the provider
    rejects it. Subclasses say how to fetch one (`fetch`: the token and its lifetime in seconds)."""

    provider_kind = "unknown"  # the provider's kind, for the token renewal metric

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, refresh_margin: float = 300.0,
                 token: str | None = None, on_settings_change: SettingsSink | None = None) -> None:
        self._clock = clock
        self.on_settings_change = on_settings_change
        self._refresh_margin = refresh_margin
        self._token = token
        # A token given up front has an unknown lifetime: it is used until the provider refuses it.
        self._refresh_at = float("inf") if token else 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.fetches = 0  # token requests made
        self._renewed_at: datetime | None = None
        self._renew_failure: tuple[datetime, str] | None = None

    async def fetch(self) -> tuple[str, float]:
        raise NotImplementedError

    async def keep_setting(self, provider: str, key: str, value: str) -> None:
        """A setting the provider changed in its token answer (a new refresh token, already in use in memory):
        handed to `on_settings_change` to be stored with the connection. Storing it failing does not fail the
        call: the value in memory works until a restart, and the log says so."""
        if self.on_settings_change is None:
            log.warning("%s: the provider issued a new %s; it is kept in memory only, so after a restart viltbridge "
                        "uses the configured one again", provider, key)
            return
        try:
            await self.on_settings_change({key: value})
        except Exception:
            log.exception("%s: storing the provider's new %s failed; it is kept in memory for now", provider, key)

    async def newer_stored(self, key: str, refused: str, *, settle_seconds: float = 1.0) -> str | None:
        """The value of `key` stored with the connection when it is not the one the provider just refused, else
        None. A provider that rotates refresh tokens revokes the old one when it issues the new, so whichever
        adapter of the connection renews first (this server's, the job worker's, another process's) leaves the
        others holding a dead token; the winner stores the new one. It may still be writing it: one more look after
        `settle_seconds`."""
        if self.on_settings_change is None:
            return None
        for wait in (0.0, settle_seconds):
            await asyncio.sleep(wait)
            try:
                stored = await self.on_settings_change.stored(key)
            except Exception:
                log.exception("reading the stored %s failed", key)
                return None
            if stored and stored != refused:
                return stored
        return None

    async def renew_with_refresh_token(self, provider: str, refresh_token: str,
                                       renew: Callable[[str], Awaitable[httpx2.Response]],
                                       explain: Callable[[ProviderApiError], str]) -> tuple[httpx2.Response, str]:
        """The token endpoint's answer to `renew(refresh_token)` and the refresh token that got it: the given one,
        or the connection's stored one when the provider refused the given one and another adapter stored a newer
        (`newer_stored`). A refusal raises ProviderFailed with `explain`'s words."""
        try:
            return await renew(refresh_token), refresh_token
        except ProviderApiError as err:
            newer = await self.newer_stored("refresh_token", refresh_token) if err.http_status in (400, 401) else None
            if newer is None:
                raise err.with_message(explain(err)) from None
        log.info("%s: the refresh token was replaced by another server or worker; renewing with the stored one",
                 provider)
        try:
            return await renew(newer), newer
        except ProviderApiError as err:
            raise err.with_message(explain(err)) from None

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    def _get_lock(self) -> asyncio.Lock:
        # A lock belongs to one event loop; tests and the CLI may use a client from several in turn.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def health_item(self) -> HealthItem:
        if self._renew_failure is not None and (self._renewed_at is None
                                                or self._renew_failure[0] > self._renewed_at):
            return HealthItem("token", False, f"renewal failed at {self._renew_failure[0]:%Y-%m-%d %H:%M:%S} UTC: "
                                              f"{self._renew_failure[1]}")
        if self._renewed_at is not None:
            return HealthItem("token", True, f"renewed at {self._renewed_at:%Y-%m-%d %H:%M:%S} UTC "
                                             f"({self.fetches} renewal(s) since this server started)")
        if self._token is not None:
            return HealthItem("token", None, "the configured token, not yet refused")
        return HealthItem("token", None, "not fetched yet: the first call fetches it")

    async def _renew(self) -> None:
        self.fetches += 1
        try:
            token, lifetime = await self.fetch()
        except ProviderFailed as failed:
            self._renew_failure = (datetime.now(UTC), failed.message)
            metrics.token_renewals.labels(self.provider_kind, "failure").inc()
            raise
        metrics.token_renewals.labels(self.provider_kind, "success").inc()
        self._renewed_at = datetime.now(UTC)
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(self._refresh_margin, lifetime / 10)

    async def headers(self) -> Mapping[str, str]:
        if not self._fresh():
            async with self._get_lock():
                if not self._fresh():  # someone else may have fetched one while we waited
                    await self._renew()
        return self._headers()

    async def refreshed(self, rejected: Mapping[str, str]) -> Mapping[str, str]:
        async with self._get_lock():
            if not self._fresh() or rejected.get("Authorization") == self._headers()["Authorization"]:
                await self._renew()
        return self._headers()

    def invalidate(self) -> None:
        self._token = None


def token_answer(provider: str, response: httpx2.Response, endpoint: str, setting: str,
                 default_lifetime: float = 3600.0) -> tuple[str, float, dict[str, Any]]:
    """The access token, its lifetime and the whole body of an OAuth token endpoint's answer, or ProviderFailed
    naming the setting to check."""
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(token, str) or not token:
        raise ProviderFailed(provider, f"The token endpoint ({endpoint}) answered without an access token; check the "
                                       f"{setting} setting.")
    try:  # seconds, as a number or (Entra ID) as text
        lifetime = float(body.get("expires_in"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lifetime = default_lifetime
    return token, lifetime if lifetime > 0 else default_lifetime, body
