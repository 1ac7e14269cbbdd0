"""The generic provider HTTP layer against a tiny local Starlette app served over real HTTP: retries and their
limits (idempotency, Retry-After, total budget), 401 refresh, client-side rate limits, the circuit breaker,
readable errors and redacted debug logs."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.conftest import Capture
from viltbridge.observability import debug_requested
from viltbridge.providers.http import (
    Budget,
    CircuitOpen,
    ProviderApiError,
    ProviderHttp,
    ProviderUnreachable,
    Quota,
    QuotaExhausted,
    RateLimitExceeded,
    RateLimits,
    new_breaker,
    parse_retry_after,
    redis_buckets,
)
from viltbridge.providers.serving import BackgroundServer

pytestmark = pytest.mark.pure

QUICK = Budget(total=3.0, max_queue_wait=1.0, attempt_timeout=1.0, max_attempts=4, connect_timeout=0.5)


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0


class Upstream:
    """A provider stand-in: `/s/{name}` answers the scripted responses for `name` in order, then 200; `/auth`
    wants the current bearer token."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Scripted]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)
        self.valid_token = "tok-1"
        self.server = BackgroundServer(Starlette(routes=[
            Route("/s/{name}", self._scripted, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/auth", self._auth, methods=["GET"]),
        ]))

    def reset(self) -> None:
        self.scripts.clear()
        self.calls.clear()
        self.valid_token = "tok-1"

    def script(self, name: str, *responses: Scripted) -> None:
        self.scripts[name].extend(responses)

    async def _scripted(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.calls[name] += 1
        step = self.scripts[name].pop(0) if self.scripts[name] else Scripted(body={"ok": True})
        if step.delay:
            await asyncio.sleep(step.delay)
        body = step.body if step.body is not None else {"code": step.status, "message": f"scripted {step.status}"}
        return JSONResponse(body, status_code=step.status, headers=step.headers)

    async def _auth(self, request: Request) -> Response:
        self.calls["auth"] += 1
        if request.headers.get("authorization") != f"Bearer {self.valid_token}":
            return JSONResponse({"code": 124, "message": "Invalid access token."}, status_code=401)
        return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def _upstream() -> Iterator[Upstream]:
    upstream = Upstream()
    upstream.server.start()
    yield upstream
    upstream.server.stop()


@pytest.fixture
def upstream(_upstream: Upstream) -> Upstream:
    _upstream.reset()
    return _upstream


class CountingAuth:
    """Bearer tokens tok-1, tok-2, ...; a refresh after a 401 is shared by concurrent callers."""

    def __init__(self) -> None:
        self.fetches = 0
        self.token = ""
        self.lock = asyncio.Lock()

    async def _fetch(self) -> None:
        await asyncio.sleep(0.02)
        self.fetches += 1
        self.token = f"tok-{self.fetches}"

    async def headers(self) -> Mapping[str, str]:
        async with self.lock:
            if not self.token:
                await self._fetch()
        return {"Authorization": f"Bearer {self.token}"}

    async def refreshed(self, rejected: Mapping[str, str]) -> Mapping[str, str]:
        async with self.lock:
            if rejected.get("Authorization") == f"Bearer {self.token}":
                await self._fetch()
        return {"Authorization": f"Bearer {self.token}"}


def make_http(base_url: str, **kwargs: Any) -> ProviderHttp:
    kwargs.setdefault("limits", RateLimits())
    kwargs.setdefault("breaker", new_breaker("test"))
    return ProviderHttp("acme", display_name="Acme", account="acct-1", base_url=base_url, wait_initial=0.02,
                        wait_jitter=0.01, **kwargs)


@pytest.fixture
async def http(upstream: Upstream) -> AsyncIterator[ProviderHttp]:
    client = make_http(upstream.server.url)
    yield client
    await client.aclose()


# -- retries ----------------------------------------------------------------------------------------------------


async def test_get_is_retried_after_server_errors(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("a", Scripted(503), Scripted(502))
    response = await http.request("GET", "/s/a", operation="read a", budget=QUICK)
    assert response.json() == {"ok": True}
    assert upstream.calls["a"] == 3


async def test_post_is_not_repeated_after_an_ambiguous_server_error(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("b", Scripted(502, body={"code": 502, "message": "Bad gateway"}))
    with pytest.raises(ProviderApiError) as caught:
        await http.request("POST", "/s/b", operation="create the thing", json={"x": 1}, budget=QUICK)
    err = caught.value
    assert upstream.calls["b"] == 1
    assert (err.http_status, err.code, err.provider_message, err.ambiguous) == (502, 502, "Bad gateway", True)
    assert err.provider == "acme" and err.status == 500  # the LMS-facing status stays ProviderFailed's
    assert "Acme had a server error (HTTP 502: Bad gateway) while viltbridge tried to create the thing" in err.message
    assert "may still have reached Acme" in err.message


async def test_post_said_to_be_idempotent_is_repeated(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("c", Scripted(500))
    await http.request("POST", "/s/c", operation="register", json={}, idempotent=True, budget=QUICK)
    assert upstream.calls["c"] == 2


async def test_429_waits_for_retry_after_even_for_post(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("d", *[Scripted(429, {"Retry-After": "0.2"}) for _ in range(2)])
    started = time.monotonic()
    await http.request("POST", "/s/d", operation="create", json={}, budget=QUICK)
    assert time.monotonic() - started >= 0.4  # both waits honoured
    assert upstream.calls["d"] == 3  # a 429 was refused before any work: safe to repeat


async def test_retry_after_beyond_the_budget_fails_at_once(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("e", Scripted(429, {"Retry-After": "30", "X-RateLimit-Type": "QPS"},
                                  {"code": 429, "message": "Slow down."}))
    started = time.monotonic()
    with pytest.raises(ProviderApiError) as caught:
        await http.request("GET", "/s/e", operation="read e", budget=QUICK)
    assert time.monotonic() - started < 5  # not the 30 s Zoom asked for (slack for a loaded machine)
    assert caught.value.retry_after_seconds == 30
    assert caught.value.rate_limit_type == "QPS"
    assert caught.value.message == ("Acme is limiting this account's API calls and viltbridge could not read e in "
                                    "time: Slow down. Try again in 30 s.")


async def test_daily_limit_is_not_retried(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("f", Scripted(429, {"X-RateLimit-Type": "Daily-limit"}))
    with pytest.raises(ProviderApiError) as caught:
        await http.request("GET", "/s/f", operation="read f", budget=QUICK)
    assert upstream.calls["f"] == 1
    assert caught.value.retry_after_seconds is not None and caught.value.retry_after_seconds > 0


def test_retry_after_formats() -> None:
    now = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("0.25", now) == 0.25
    assert parse_retry_after("2026-03-03T00:00:00Z", now) == 3600  # Zoom's daily-limit form
    assert parse_retry_after("Tue, 03 Mar 2026 00:00:00 GMT", now) == 3600  # HTTP date
    assert parse_retry_after("2026-03-02T22:00:00Z", now) == 0  # in the past: now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_read_timeout_retried_for_get_but_not_for_post(http: ProviderHttp, upstream: Upstream) -> None:
    # Attempts of 2 s (a quick answer fits even on a busy machine) against answers of 30 s: far apart.
    budget = Budget(total=15.0, max_queue_wait=1.0, attempt_timeout=2.0, max_attempts=3)
    upstream.script("g", Scripted(delay=30.0))
    started = time.monotonic()
    assert (await http.request("GET", "/s/g", operation="read g", budget=budget)).status_code == 200
    assert time.monotonic() - started < 15  # the slow answer (30 s) was abandoned after 2 s
    upstream.script("h", Scripted(delay=30.0))
    with pytest.raises(ProviderUnreachable) as caught:
        await http.request("POST", "/s/h", operation="create h", json={}, budget=budget)
    assert caught.value.reason == "timeout" and caught.value.ambiguous
    assert upstream.calls["h"] == 1
    assert "Acme did not answer in time while viltbridge tried to create h" in caught.value.message


async def test_refused_connection_is_retried_and_reported() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_http(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ProviderUnreachable) as caught:
            await client.request("POST", "/s/x", operation="create x", json={}, budget=QUICK)
    finally:
        await client.aclose()
    err = caught.value
    assert err.reason == "connect" and not err.ambiguous  # never sent: repeating a POST was safe
    assert "could not connect to Acme (127.0.0.1) to create x" in err.message
    assert f"(viltbridge tried {QUICK.max_attempts} times over " in err.message


async def test_total_budget_bounds_the_call(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("i", *[Scripted(503, {"Retry-After": "0.5"}) for _ in range(20)])
    budget = Budget(total=3.0, max_queue_wait=0.5, attempt_timeout=2.0, max_attempts=20)
    started = time.monotonic()
    with pytest.raises(ProviderApiError):
        await http.request("GET", "/s/i", operation="read i", budget=budget)
    assert time.monotonic() - started < 9  # 20 attempts would take 10 s
    assert 2 <= upstream.calls["i"] <= 7


# -- auth -------------------------------------------------------------------------------------------------------


async def test_401_refreshes_once_shared_by_concurrent_callers(upstream: Upstream) -> None:
    auth = CountingAuth()
    client = make_http(upstream.server.url, auth=auth)
    try:
        await client.request("GET", "/auth", operation="read", budget=QUICK)
        assert auth.fetches == 1
        upstream.valid_token = "tok-2"  # the provider dropped tok-1
        await asyncio.gather(*[client.request("GET", "/auth", operation="read", budget=QUICK) for _ in range(5)])
        assert auth.fetches == 2  # one refresh for five 401s
        upstream.valid_token = "never"
        with pytest.raises(ProviderApiError) as caught:
            await client.request("GET", "/auth", operation="read", budget=QUICK)
        assert caught.value.http_status == 401 and caught.value.code == 124
    finally:
        await client.aclose()


# -- client-side rate limits ------------------------------------------------------------------------------------


async def test_no_slot_in_time_fails_fast_without_sending(http: ProviderHttp, upstream: Upstream) -> None:
    quota = Quota("acme:acct-1:writes", 2, 60.0, label="Acme's write limit (2 calls per 60 s)")
    budget = Budget(total=30.0, max_queue_wait=20.0, attempt_timeout=5.0)
    for _ in range(2):
        await http.request("GET", "/s/q", operation="write", quotas=[quota], budget=budget)
    started = time.monotonic()
    with pytest.raises(RateLimitExceeded) as caught:
        await http.request("GET", "/s/q", operation="write", quotas=[quota], budget=budget)
    assert time.monotonic() - started < 10  # no point waiting 20 s for a slot 60 s away
    assert upstream.calls["q"] == 2
    assert caught.value.retry_after_seconds == 60
    assert caught.value.message == ("viltbridge did not write: Acme's write limit (2 calls per 60 s) is reached and "
                                    "no slot frees up within the 20 s this call may wait. Try again in 60 s.")


async def test_waits_for_a_slot_within_its_queue_wait(http: ProviderHttp, upstream: Upstream) -> None:
    quota = Quota("acme:acct-1:burst", 3, 0.3)
    started = time.monotonic()
    await asyncio.gather(*[http.request("GET", "/s/w", operation="w", quotas=[quota], budget=QUICK)
                           for _ in range(7)])
    assert time.monotonic() - started >= 0.6  # 3 now, 3 after 0.3 s, 1 after 0.6 s
    assert upstream.calls["w"] == 7


async def test_daily_aligned_quota_says_when_it_resets(http: ProviderHttp, upstream: Upstream) -> None:
    quota = Quota("acme:acct-1:host:x:day", 1, 86400.0, aligned=True, label="Acme's daily limit of 1 call for x")
    await http.request("GET", "/s/day", operation="create a meeting", quotas=[quota], budget=QUICK)
    with pytest.raises(RateLimitExceeded) as caught:
        await http.request("GET", "/s/day", operation="create a meeting", quotas=[quota], budget=QUICK)
    assert caught.value.message == ("Acme's daily limit of 1 call for x is used up until 00:00 UTC, so viltbridge "
                                    "did not create a meeting. Try again after that.")


A_WHOLE_SECOND_MS = 1_800_000_000_000  # epoch milliseconds


def _at_ms(epoch_ms: int) -> float:
    """The epoch seconds of the middle of that millisecond: a float's rounding never moves it to the next one."""
    return (epoch_ms + 0.5) / 1000


async def test_aligned_window_with_a_guard_gives_no_slot_in_its_last_moments() -> None:
    quota = Quota("acme:acct-1:second", 5, 1.0, aligned=True, guard=0.2)
    limits = RateLimits()
    with time_machine.travel(_at_ms(A_WHOLE_SECOND_MS + 850), tick=False), pytest.raises(QuotaExhausted) as caught:
        await limits.acquire([quota], max_wait=0.1)
    assert 0.15 <= caught.value.wait <= 0.16  # until the next second
    with time_machine.travel(_at_ms(A_WHOLE_SECOND_MS + 1000), tick=False):
        for _ in range(5):
            await limits.acquire([quota], max_wait=0)  # the whole limit at the second's start
        with pytest.raises(QuotaExhausted):
            await limits.acquire([quota], max_wait=0)


def test_a_guard_must_leave_the_window_open() -> None:
    with pytest.raises(ValueError, match="must leave part of the 1 s window open"):
        Quota("acme:acct-1:second", 5, 1.0, aligned=True, guard=1.0)


@settings(max_examples=40, deadline=None)
@given(limit=st.integers(2, 12), guard_ms=st.integers(0, 500), burst=st.none() | st.integers(1, 11),
       offsets=st.lists(st.integers(0, 3999), max_size=50))
def test_aligned_window_grants_its_limit_per_window_never_in_its_guard(limit: int, guard_ms: int, burst: int | None,
                                                                        offsets: list[int]) -> None:
    quota = Quota("acme:acct-1:second", limit, 1.0, aligned=True, guard=guard_ms / 1000, burst=burst)
    slice_ms = quota.rates[0].interval  # burst slices, when there are any
    limits = RateLimits()
    granted: Counter[int] = Counter()
    granted_in_slice: Counter[int] = Counter()
    for offset in sorted(offsets):
        in_guard = offset % 1000 >= 1000 - guard_ms
        with time_machine.travel(_at_ms(A_WHOLE_SECOND_MS + offset), tick=False):
            try:
                asyncio.run(limits.acquire([quota], max_wait=0))
            except QuotaExhausted:
                limited_by_burst = len(quota.rates) > 1
                assert in_guard or granted[offset // 1000] == limit or limited_by_burst
                continue
        assert not in_guard
        granted[offset // 1000] += 1
        granted_in_slice[(A_WHOLE_SECOND_MS + offset) // slice_ms] += 1
    assert all(count <= limit for count in granted.values())
    if len(quota.rates) > 1:
        assert all(count <= quota.rates[0].limit for count in granted_in_slice.values())


# -- circuit breaker --------------------------------------------------------------------------------------------


async def test_circuit_opens_after_outages_and_closes_after_recovery(upstream: Upstream) -> None:
    breaker = new_breaker("acme:acct-1", fail_max=2, reset_timeout=0.3)
    client = make_http(upstream.server.url, breaker=breaker)
    once = Budget(total=2.0, max_queue_wait=1.0, attempt_timeout=1.0, max_attempts=1)
    try:
        upstream.script("o", *[Scripted(404) for _ in range(3)])  # refusals are not outages
        for _ in range(3):
            with pytest.raises(ProviderApiError):
                await client.request("GET", "/s/o", operation="read o", budget=once)
        assert breaker.current_state == "closed"
        upstream.script("p", *[Scripted(500) for _ in range(5)])
        for _ in range(2):
            with pytest.raises(ProviderApiError):
                await client.request("GET", "/s/p", operation="read p", budget=once)
        assert breaker.current_state == "open"
        with pytest.raises(CircuitOpen) as caught:
            await client.request("GET", "/s/p", operation="read p", budget=once)
        assert upstream.calls["p"] == 2  # nothing sent while open
        assert "Acme failed 2 times in a row for this account" in caught.value.message
        upstream.scripts["p"].clear()
        await asyncio.sleep(0.35)
        await client.request("GET", "/s/p", operation="read p", budget=once)  # the half-open trial succeeds
        assert breaker.current_state == "closed"
    finally:
        await client.aclose()


# -- errors and logs --------------------------------------------------------------------------------------------


async def test_provider_error_details_are_kept(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("v", Scripted(400, body={"code": 300, "message": "Validation Failed.",
                                             "errors": [{"field": "user_info.email", "message": "Invalid field."}]}))
    with pytest.raises(ProviderApiError) as caught:
        await http.request("POST", "/s/v", params={"token": "abc"}, operation="create the user", json={},
                           budget=QUICK)
    err = caught.value
    assert (err.http_status, err.code) == (400, 300)
    assert err.provider_message == "Validation Failed. (user_info.email: Invalid field.)"
    assert err.message == ("Acme refused to create the user: Validation Failed. (user_info.email: Invalid field.) "
                           "(HTTP 400, code 300).")
    assert err.url.endswith("/s/v?token=***")
    upstream.script("graph", Scripted(403, body={"error": {"code": "Forbidden", "message": "No policy."}}))
    with pytest.raises(ProviderApiError) as caught:
        await http.request("GET", "/s/graph", operation="read", budget=QUICK)
    assert (caught.value.code, caught.value.provider_message) == ("Forbidden", "No policy.")


async def test_debug_log_shows_the_exchange_with_secrets_redacted(http: ProviderHttp, upstream: Upstream) -> None:
    upstream.script("log", Scripted(200, body={"access_token": "resp-secret-token", "join_url": "https://j/1?pwd=x",
                                               "topic": "Algebra"}))
    capture = Capture()
    logger = logging.getLogger("viltbridge.providers.http")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    flag = debug_requested.set(True)
    try:
        await http.request("POST", "/s/log", params={"next_page_token": "page-secret", "page_size": 30},
                           json={"client_secret": "body-secret", "name": "Ann"}, operation="log", budget=QUICK)
    finally:
        debug_requested.reset(flag)
        logger.removeHandler(capture)
        logger.setLevel(level)
    [line] = capture.lines
    assert line.startswith(f"acme POST {upstream.server.url}/s/log?next_page_token=***&page_size=30 -> 200 in ")
    assert " ms; request body={'client_secret': '***', 'name': 'Ann'}; " in line
    assert "response body={'access_token': '***', 'join_url': '***', 'topic': 'Algebra'}" in line
    for secret in ("page-secret", "body-secret", "resp-secret-token", "pwd=x"):
        assert secret not in line


def _redis_or_skip() -> str:
    import redis

    from tests.conftest import service_unavailable

    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError as exc:
        service_unavailable(f"Redis at {url} is unreachable: {exc}")
    return url


async def test_processes_sharing_redis_buckets_share_one_account_limit() -> None:
    """Two processes' worth of buckets (two RateLimits, two Redis clients) draw from one quota: together they
    never exceed the account's limit, which separate in-memory buckets would each allow in full."""
    url = _redis_or_skip()
    quota = Quota("zoom:acct-shared:light:second", limit=5, seconds=60.0)
    api, worker = RateLimits(redis_buckets(url)), RateLimits(redis_buckets(url))
    for limits in (api, worker, api, worker, api):
        await limits.acquire([quota], max_wait=0)
    with pytest.raises(QuotaExhausted):
        await worker.acquire([quota], max_wait=0)
    alone = RateLimits()  # memory: knows nothing of the others
    await alone.acquire([quota], max_wait=0)
    daily = Quota("zoom:acct-shared:heavy:day", limit=2, seconds=86400.0, aligned=True)
    await api.acquire([daily], max_wait=0)
    await worker.acquire([daily], max_wait=0)
    with pytest.raises(QuotaExhausted):
        await api.acquire([daily], max_wait=0)
    for limits in (api, worker):
        limits.close()
