"""`ProviderHttp`, the client every provider call goes through: it puts auth, rate limits, retries within the
call's budget, the circuit breaker and debug logs around one httpx2 client per provider account."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, Self

import httpx2
import pybreaker
import stamina

from viltbridge import metrics
from viltbridge.core.provider import HealthItem
from viltbridge.core.redaction import redact
from viltbridge.providers.http.bearer import CachedBearerToken
from viltbridge.providers.http.breaker import _breaker_closes_in, account_breaker
from viltbridge.providers.http.budget import INTERACTIVE, Budget
from viltbridge.providers.http.error_body import _error_details
from viltbridge.providers.http.errors import (
    CircuitOpen,
    ProviderApiError,
    ProviderCallFailed,
    ProviderUnreachable,
    ProviderUrlRefused,
    RateLimitExceeded,
)
from viltbridge.providers.http.logs import log_exchange
from viltbridge.providers.http.quota import Quota, QuotaExhausted, RateLimits, shared_limits
from viltbridge.providers.http.retry_after import _seconds_to_utc_midnight, parse_retry_after
from viltbridge.providers.url_guard import AddressRefused, current_policy, guarded_transport

# Methods whose repetition has the same effect as one call (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# The deadline of the request being made in this task: a nested request (e.g. the token fetch inside an API call)
# never outlives the call that caused it.
_deadline: ContextVar[float | None] = ContextVar("provider_call_deadline", default=None)


class Auth(Protocol):
    """How a provider's requests are authenticated (e.g. a cached OAuth bearer token)."""

    async def headers(self) -> Mapping[str, str]:
        """Headers for the next request; cheap (cached) when nothing needs refreshing."""
        ...

    async def refreshed(self, rejected: Mapping[str, str]) -> Mapping[str, str]:
        """New headers after the provider answered 401 to `rejected`. Concurrent callers share one refresh: when
        someone already replaced the rejected credentials, the current ones come back without a new fetch."""
        ...


def _wait_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class _Transient(Exception):
    """A failed attempt that another attempt may cure."""

    def __init__(self, error: ProviderCallFailed, *, ambiguous: bool, wait: float | None = None,
                 final: bool = False, rate_limited: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.rate_limited = rate_limited  # a 429: the provider did no work and (usually) said when to return
        self.ambiguous = ambiguous  # the request may have reached the provider
        self.wait = wait  # what the provider asked for (Retry-After / X-RateLimit-*), else exponential backoff
        self.final = final  # retrying within any budget is pointless (a daily limit)


@dataclass
class _Call:
    method: str
    url: str
    operation: str
    params: Mapping[str, Any] | None
    json: Any
    data: Mapping[str, Any] | None
    headers: Mapping[str, str]
    quotas: Sequence[Quota]
    budget: Budget
    safe: bool  # may be repeated even if it might have taken effect
    authenticate: bool
    deadline: float
    started: float

    @property
    def endpoint_class(self) -> str:
        """For the metrics: the class of the first rate-limit bucket ("zoom:<account>:light:second" is "light"),
        else whether the call reads or writes."""
        if self.quotas:
            parts = self.quotas[0].key.split(":")
            if len(parts) > 2:
                return parts[2]
        return "read" if self.method in ("GET", "HEAD") else "write"


class ProviderHttp:
    """HTTP to one provider account: auth, rate limits, retries, circuit breaker, debug logs, readable errors."""

    def __init__(
        self,
        provider: str,
        *,
        account: str,
        base_url: str = "",
        display_name: str | None = None,
        auth: Auth | None = None,
        limits: RateLimits | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        wait_initial: float = 0.1,
        wait_max: float = 5.0,
        wait_jitter: float = 0.1,
    ) -> None:
        self.provider = provider
        self.account = account
        self.name = display_name or provider.capitalize()
        self.auth = auth  # settable after construction: a token provider usually needs this client itself
        self.limits = limits if limits is not None else shared_limits()
        self.breaker = breaker if breaker is not None else account_breaker(provider, account)
        self.wait_initial, self.wait_max, self.wait_jitter = wait_initial, wait_max, wait_jitter
        self._client = httpx2.AsyncClient(
            base_url=base_url, transport=transport or guarded_transport(), follow_redirects=False, trust_env=False,
            headers={"User-Agent": "viltbridge", "Accept": "application/json", **(headers or {})},
        )
        # What this client has seen, for `health()`: the console's provider health.
        self._last_ok_at: datetime | None = None
        self._last_failure: tuple[datetime, str, str] | None = None  # when, operation, message
        self._calls_today: dict[str, int] = {}  # quota label -> calls today (UTC), this process
        self._today = datetime.now(UTC).date()
        self._clock_offset: float | None = None  # the provider's Date minus our clock, from its last answer

    async def aclose(self) -> None:
        await self._client.aclose()

    def _record(self, call_quotas: Sequence[Quota], failure: ProviderCallFailed | None, operation: str) -> None:
        now = datetime.now(UTC)
        if now.date() != self._today:
            self._today, self._calls_today = now.date(), {}
        if failure is None:
            self._last_ok_at = now
        elif failure.sent:
            self._last_failure = (now, operation, failure.message)
        if failure is None or failure.sent:
            for quota in call_quotas:
                label = quota.label or quota.key
                self._calls_today[label] = self._calls_today.get(label, 0) + 1

    def health(self) -> list[HealthItem]:
        """What this client has seen of the account: token, last call, circuit breaker, calls per quota today."""
        items: list[HealthItem] = []
        if isinstance(self.auth, CachedBearerToken):
            items.append(self.auth.health_item())
        failure = self._last_failure
        if failure is not None and (self._last_ok_at is None or failure[0] > self._last_ok_at):
            items.append(HealthItem("last call", False, f"failed at {failure[0]:%Y-%m-%d %H:%M:%S} UTC trying to "
                                                        f"{failure[1]}: {failure[2]}"))
        elif self._last_ok_at is not None:
            items.append(HealthItem("last call", True, f"succeeded at {self._last_ok_at:%Y-%m-%d %H:%M:%S} UTC"))
        else:
            items.append(HealthItem("last call", None, "no call made since this server started"))
        state = self.breaker.current_state
        items.append(HealthItem("circuit breaker", state != pybreaker.STATE_OPEN,
                                f"{state}: calls pause after {self.breaker.fail_max} outages in a row"))
        for label, count in sorted(self._calls_today.items()):
            items.append(HealthItem("calls today", None, f"{count} against {label} (this server process, UTC day)"))
        return items

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        quotas: Sequence[Quota] = (),
        budget: Budget = INTERACTIVE,
        idempotent: bool | None = None,
        authenticate: bool = True,
        use_breaker: bool = True,
    ) -> httpx2.Response:
        """Send one logical request and return its 2xx response, or raise a `ProviderCallFailed`.

        `operation` says what the call does, for messages ("create the meeting"). `quotas` name the rate-limit
        buckets it spends a slot of (per attempt). `idempotent` overrides the method's idempotency: True makes a
        POST that is safe to repeat retryable after ambiguous failures; False keeps a PUT from being repeated.
        `use_breaker=False` for calls made inside another call (a token fetch), which counts for both.
        """
        method = method.upper()
        now = time.monotonic()
        deadline = now + budget.total
        outer = _deadline.get()
        if outer is not None:
            deadline = min(deadline, outer)
        call = _Call(method=method, url=url, operation=operation, params=params, json=json, data=data,
                     headers=dict(headers or {}), quotas=tuple(quotas), budget=budget,
                     safe=idempotent if idempotent is not None else method in IDEMPOTENT_METHODS,
                     authenticate=authenticate and self.auth is not None, deadline=deadline, started=now)
        token = _deadline.set(deadline)
        try:
            if not use_breaker:
                response = await self._with_retries(call)
                self._record(call.quotas, None, operation)
                return response
            try:
                with self.breaker.calling():
                    response = await self._with_retries(call)
                    self._record(call.quotas, None, operation)
                    return response
            except ProviderCallFailed as failed:
                self._record(call.quotas, failed, operation)
                raise
            except pybreaker.CircuitBreakerError:
                closed_in = _breaker_closes_in(self.breaker)
                raise CircuitOpen(
                    self.provider,
                    f"{self.name} failed {self.breaker.fail_max} times in a row for this account (no answer or "
                    f"server errors), so viltbridge is pausing calls to it for "
                    f"{_wait_words(closed_in)} and did not try to {operation}. Try again shortly; "
                    f"if this persists, check {self.name}'s status page and this server's network access to it.",
                    operation=operation, retry_after_seconds=max(1, math.ceil(closed_in)),
                ) from None
        finally:
            _deadline.reset(token)

    # -- retries --------------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.wait_max, self.wait_initial * 2 ** (attempt - 1) + random.uniform(0, self.wait_jitter)))  # noqa: S311

    async def _with_retries(self, call: _Call) -> httpx2.Response:
        attempts = failures = 0

        def should_retry(exc: Exception) -> bool | float:
            wait = _should_retry(exc)
            if wait is not False:
                metrics.provider_retries.labels(self.provider, call.endpoint_class).inc()
            return wait

        def _should_retry(exc: Exception) -> bool | float:
            """stamina's backoff hook: False gives up, a number is the wait before the next attempt.

            429s that say when to come back are bounded by the time budget only; other failures also by
            `max_attempts`."""
            nonlocal failures
            if not isinstance(exc, _Transient) or exc.final:
                return False
            if exc.ambiguous and not call.safe:
                return False
            if not exc.rate_limited:
                failures += 1
                if failures >= call.budget.max_attempts:
                    return False
            wait = max(0.05, exc.wait) if exc.wait is not None else self._backoff(failures or attempts)
            if time.monotonic() + wait + 0.05 >= call.deadline:
                return False  # the provider asks for longer than the budget has left: fail now, not later
            return wait

        try:
            async for attempt in stamina.retry_context(on=should_retry, attempts=None, timeout=call.budget.total):
                with attempt:
                    attempts += 1
                    return await self._attempt(call)
        except _Transient as exc:
            raise self._give_up(call, exc, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_up(self, call: _Call, exc: _Transient, attempts: int) -> ProviderCallFailed:
        extra = ""
        if exc.ambiguous and not call.safe:
            extra += (f" The request may still have reached {self.name}: check whether it took effect before "
                      "repeating it.")
        if attempts > 1:
            extra += f" (viltbridge tried {attempts} times over {time.monotonic() - call.started:.1f} s.)"
        error = exc.error.with_message(exc.error.message + extra, explained=False) if extra else exc.error
        error.ambiguous = exc.ambiguous and not call.safe
        return error

    # -- one attempt ----------------------------------------------------------------------------------------

    async def _attempt(self, call: _Call) -> httpx2.Response:
        headers = dict(call.headers)
        auth_headers: Mapping[str, str] = {}
        if call.authenticate and self.auth is not None:
            auth_headers = await self.auth.headers()
        # The slot last, right before sending: a provider counting per calendar second must count the call in the
        # second the slot was taken in, not after a token fetch.
        await self._take_slots(call)
        response = await self._send(call, {**headers, **auth_headers})
        if response.status_code == 401 and call.authenticate and self.auth is not None:
            auth_headers = await self.auth.refreshed(auth_headers)
            await self._take_slots(call)
            response = await self._send(call, {**headers, **auth_headers})
        return self._check(call, response)

    async def _take_slots(self, call: _Call) -> None:
        if not call.quotas:
            return
        remaining = call.deadline - time.monotonic()
        try:
            await self.limits.acquire(call.quotas, max_wait=min(call.budget.max_queue_wait, remaining))
        except QuotaExhausted as exc:
            raise self._rate_limit_exceeded(call, exc) from None

    def _rate_limit_exceeded(self, call: _Call, exc: QuotaExhausted) -> RateLimitExceeded:
        quota = exc.quota
        label = quota.label or f"the rate limit {quota.key} ({quota.limit} calls per {quota.seconds:g} s)"
        if quota.aligned and quota.seconds >= 3600:
            reset = quota.window_end(datetime.now(UTC))
            message = (f"{label} is used up until {reset:%H:%M} UTC, so viltbridge did not {call.operation}. "
                       f"Try again after that.")
        else:
            message = (f"viltbridge did not {call.operation}: {label} is reached and no slot frees up within the "
                       f"{call.budget.max_queue_wait:g} s this call may wait. Try again in "
                       f"{_wait_words(exc.wait)}.")
        return RateLimitExceeded(self.provider, message, quota=quota, retry_after_seconds=math.ceil(exc.wait),
                                 operation=call.operation)

    def _timeout(self, call: _Call) -> httpx2.Timeout:
        remaining = call.deadline - time.monotonic()
        if remaining <= 0.01:
            raise _Transient(ProviderUnreachable(
                self.provider, f"{self.name} did not answer in time while viltbridge tried to {call.operation} "
                f"(the call's time budget of {call.budget.total:g} s is used up).",
                reason="budget", operation=call.operation), ambiguous=False, final=True)
        read = min(call.budget.attempt_timeout, remaining)
        return httpx2.Timeout(read, connect=min(call.budget.connect_timeout, read))

    async def _send(self, call: _Call, headers: Mapping[str, str]) -> httpx2.Response:
        request = self._client.build_request(
            call.method, call.url, params=call.params, json=call.json, data=call.data, headers=headers,
            timeout=self._timeout(call))
        problem = current_policy().scheme_problem(request.url.scheme, request.url.host)
        started = time.perf_counter()
        try:
            if problem is not None:
                raise AddressRefused(f"{request.url.scheme}://{request.url.host}: {problem}")
            response = await self._client.send(request)
        except AddressRefused as refused:
            raise ProviderUrlRefused(
                self.provider, f"viltbridge did not call {self.name} to {call.operation}: {refused} Correct the "
                "connection's provider settings.", operation=call.operation) from None
        except httpx2.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            log_exchange(self.provider, request, None, elapsed, type(exc).__name__)
            self._count(call, "error", elapsed)
            raise self._transport_failure(call, request, exc) from None
        elapsed = (time.perf_counter() - started) * 1000
        log_exchange(self.provider, request, response, elapsed, None)
        self._count(call, str(response.status_code), elapsed)
        self._note_clock(response.headers.get("date"), elapsed / 1000)
        return response

    def _note_clock(self, date_header: str | None, round_trip: float) -> None:
        if not date_header:
            return
        try:
            provider_now = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        if provider_now.tzinfo is None:
            return
        # The provider stamped its answer somewhere within the round trip: compare with our clock at its middle.
        midway = datetime.now(UTC).timestamp() - round_trip / 2
        self._clock_offset = provider_now.timestamp() - midway

    def clock_offset(self) -> float | None:
        """The provider's clock minus ours in seconds, from the Date header of its last answer (None: none yet).
        Date has whole seconds, truncated, so an exact clock reads between -1 and 0."""
        return self._clock_offset

    def _count(self, call: _Call, status: str, elapsed_ms: float) -> None:
        endpoint_class = call.endpoint_class
        metrics.provider_calls.labels(self.provider, endpoint_class, status).inc()
        metrics.provider_call_seconds.labels(self.provider, endpoint_class).observe(elapsed_ms / 1000)
        if status == "429":
            metrics.provider_rate_limited.labels(self.provider, endpoint_class).inc()

    def _transport_failure(self, call: _Call, request: httpx2.Request, exc: httpx2.HTTPError) -> _Transient:
        host = request.url.host
        # Never sent: the provider cannot have acted on it, so repeating is safe whatever the method.
        not_sent = isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
        if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
            reason = "connect"
            message = (f"viltbridge could not connect to {self.name} ({host}) to {call.operation} "
                       f"({type(exc).__name__}). Check this server's network access to {host} and "
                       f"{self.name}'s status page.")
        elif isinstance(exc, httpx2.TimeoutException):
            reason = "timeout"
            message = (f"{self.name} did not answer in time while viltbridge tried to {call.operation} "
                       f"({type(exc).__name__}). {self.name} may be slow or down; try again in a few minutes.")
        else:
            reason = "connection"
            message = (f"The connection to {self.name} ({host}) broke while viltbridge tried to {call.operation} "
                       f"({type(exc).__name__}). Try again in a few minutes.")
        error = ProviderUnreachable(self.provider, message, reason=reason, operation=call.operation)
        return _Transient(error, ambiguous=not not_sent)

    def _check(self, call: _Call, response: httpx2.Response) -> httpx2.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        code, provider_message, body = _error_details(response)
        url = redact(str(response.request.url))
        common: dict[str, Any] = {"http_status": status, "code": code, "provider_message": provider_message,
                                  "body": body, "method": call.method, "url": url, "operation": call.operation}
        if status == 429:
            limit_type = response.headers.get("x-ratelimit-type")
            daily = (limit_type or "").lower().startswith("daily")
            wait = parse_retry_after(response.headers.get("retry-after"))
            if daily and not wait:
                wait = _seconds_to_utc_midnight()
            elif wait is None and (limit_type or "").lower() == "qps":
                wait = 1.0 - time.time() % 1.0 + 0.05  # the provider counts per second: wait for the next one
            retry = math.ceil(wait) if wait is not None else None
            when = f" Try again in {_wait_words(wait)}." if wait is not None else " Try again in a minute."
            error = ProviderApiError(
                self.provider, f"{self.name} is limiting this account's API calls and viltbridge could not "
                f"{call.operation} in time: {provider_message}{when}",
                retry_after_seconds=retry, rate_limit_type=limit_type, **common)
            raise _Transient(error, ambiguous=False, wait=wait, final=daily, rate_limited=wait is not None)
        if status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"))
            error = ProviderApiError(
                self.provider, f"{self.name} had a server error (HTTP {status}: {provider_message}) while viltbridge "
                f"tried to {call.operation}. The problem is on {self.name}'s side; try again in a few minutes.",
                retry_after_seconds=math.ceil(wait) if wait is not None else None, **common)
            raise _Transient(error, ambiguous=True, wait=wait)
        code_text = f", code {code}" if code is not None and str(code) != str(status) else ""
        raise ProviderApiError(
            self.provider, f"{self.name} refused to {call.operation}: {provider_message} (HTTP {status}{code_text}).",
            **common)
