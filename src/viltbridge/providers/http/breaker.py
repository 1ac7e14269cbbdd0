"""Circuit breakers (pybreaker), one per provider account and process: after repeated outages calls fail at once
instead of waiting on a provider that is down."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pybreaker

from viltbridge import metrics
from viltbridge.providers.http.errors import ProviderApiError, ProviderUnreachable
from viltbridge.providers.http.logs import log


def _not_an_outage(exc: BaseException) -> bool:
    """pybreaker counts what this returns False for: no answer, or server errors that retries did not cure.
    A refusal (4xx), a rate limit or a cancelled call says nothing about the provider being down."""
    if isinstance(exc, ProviderUnreachable):
        return False
    return not (isinstance(exc, ProviderApiError) and exc.http_status >= 500)


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        level = logging.WARNING if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        log.log(level, "circuit breaker %s: %s -> %s", cb.name, old_state.name if old_state else "-", new_state.name)
        _show_state(cb, new_state.name)


def _show_state(breaker: pybreaker.CircuitBreaker, state: str) -> None:
    provider, _, account = str(breaker.name).partition(":")
    metrics.circuit_breaker_state.labels(provider, account).set(metrics.BREAKER_STATES.get(state, 0))


def new_breaker(name: str, *, fail_max: int = 5, reset_timeout: float = 30.0) -> pybreaker.CircuitBreaker:
    # throw_new_error_on_trip=False: the call that trips the breaker still gets its own, more telling error.
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout, exclude=[_not_an_outage],
                                    listeners=[_BreakerLog()], name=name, throw_new_error_on_trip=False)


def _breaker_closes_in(breaker: pybreaker.CircuitBreaker) -> float:
    """Seconds until an open breaker lets a trial call through (its full timeout if it cannot say)."""
    opened_at = breaker._state_storage.opened_at  # pybreaker offers no public accessor
    if opened_at is None:
        return float(breaker.reset_timeout)
    passed = (datetime.now(UTC) - opened_at).total_seconds()
    return max(0.0, breaker.reset_timeout - passed)


_BREAKERS: dict[tuple[str, str], pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def account_breaker(provider: str, account: str, *, fail_max: int = 5,
                    reset_timeout: float = 30.0) -> pybreaker.CircuitBreaker:
    """The process-wide breaker of one provider account."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get((provider, account))
        if breaker is None:
            breaker = new_breaker(f"{provider}:{account}", fail_max=fail_max, reset_timeout=reset_timeout)
            _BREAKERS[(provider, account)] = breaker
            _show_state(breaker, breaker.current_state)
        return breaker
