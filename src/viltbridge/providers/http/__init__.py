"""The one way viltbridge talks HTTP to meeting providers (every provider with an API: Zoom, Teams, Webex, GoTo, BBB).

Every provider call goes through `ProviderHttp.request`, which

- authenticates through a pluggable `Auth` (cached bearer tokens, ...) and, on a 401, retries once with headers
  refreshed by the `Auth` (concurrent 401s share one refresh);
- takes a slot from each named client-side rate-limit bucket (`Quota`, kept by pyrate-limiter in `RateLimits`;
  in memory per process, or in Redis shared by every process once `share_limits_through` is given a URL at
  start-up). A call waits at most its budget's
  `max_queue_wait` for a slot, then fails fast with `RateLimitExceeded` instead of blocking;
- retries transient failures with stamina: 429 (after `Retry-After`, or Zoom's `X-RateLimit-Type`), 5xx,
  timeouts and dropped connections, all within the call's total time `Budget`. A request that may have reached
  the provider (5xx, read timeout, connection lost mid-way) is repeated only when it is idempotent (GET, PUT,
  DELETE, ... or `idempotent=True`); a refused connection or a 429 is always safe to repeat;
- runs inside the provider account's pybreaker circuit breaker: after `fail_max` outages in a row (no answer, or
  5xx after retries) calls fail at once with `CircuitOpen` until `reset_timeout` has passed;
- logs each exchange at DEBUG: method, URL with secret query parameters blanked, status, elapsed ms and bodies
  through `observability.redacted_body` (tokens, secrets and join/start links blanked). The log handler shows
  DEBUG lines only for requests that asked for debug (see `observability`), and bodies are only redacted and
  formatted when a line is actually written;
- raises `ProviderFailed` subclasses whose message says what happened and what to do: `ProviderApiError` carries
  the provider's own HTTP status, error code and message for callers that branch on them.

One `ProviderHttp` per provider account and event loop (it owns an `httpx2.AsyncClient`); rate-limit buckets and
circuit breakers are per process by default (`shared_limits()`, `account_breaker()`), so every client of one
account shares them.

The package, one concern a module: `client` (`ProviderHttp`, `Auth`), `budget` (`Budget`, `INTERACTIVE`, `BULK`),
`errors` (what `ProviderHttp` raises), `quota` (`Quota`, `RateLimits`, memory and Redis buckets), `breaker` (circuit
breakers), `bearer` (`CachedBearerToken`, `token_answer`), `retry_after` (`parse_retry_after`), `error_body` (a
provider's error code and message) and `logs` (the logger and the DEBUG exchange lines).
"""

from viltbridge.providers.http.bearer import CachedBearerToken, token_answer
from viltbridge.providers.http.breaker import _BREAKERS, account_breaker, new_breaker
from viltbridge.providers.http.budget import BULK, INTERACTIVE, Budget
from viltbridge.providers.http.client import Auth, ProviderHttp
from viltbridge.providers.http.errors import (
    CircuitOpen,
    ProviderApiError,
    ProviderCallFailed,
    ProviderUnreachable,
    ProviderUrlRefused,
    RateLimitExceeded,
)
from viltbridge.providers.http.quota import (
    BucketBackend,
    Quota,
    QuotaExhausted,
    RateLimits,
    memory_buckets,
    redis_buckets,
    share_limits_through,
    shared_limits,
)
from viltbridge.providers.http.retry_after import parse_retry_after

__all__ = [
    "BULK", "INTERACTIVE", "_BREAKERS", "Auth", "BucketBackend", "Budget", "CachedBearerToken", "CircuitOpen",
    "ProviderApiError", "ProviderCallFailed", "ProviderHttp", "ProviderUnreachable", "ProviderUrlRefused", "Quota",
    "QuotaExhausted", "RateLimitExceeded", "RateLimits", "account_breaker", "memory_buckets", "new_breaker",
    "parse_retry_after", "redis_buckets", "share_limits_through", "shared_limits", "token_answer",
]
