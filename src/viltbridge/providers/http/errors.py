"""The errors `ProviderHttp` raises: each message says what happened and what to do, and the attributes say it to
code (the provider's HTTP status and error code, whether anything was sent, whether it may have taken effect)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from viltbridge.core.errors import ProviderFailed

if TYPE_CHECKING:
    from viltbridge.providers.http.quota import Quota


class ProviderCallFailed(ProviderFailed):
    """Base of the errors `ProviderHttp` raises. `message` is written for an admin; the attributes are for code."""

    def __init__(self, provider: str, message: str, *, operation: str = "", retry_after_seconds: int | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, retry_after_seconds)
        self.operation = operation
        # The request may have reached the provider and taken effect although no answer came back.
        self.ambiguous = ambiguous
        self.explained = False  # a provider client has rewritten the message with its own knowledge

    def with_message(self, message: str, *, explained: bool = True) -> Self:
        """A copy with another message (a provider client's explanation of the provider's error)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.args = (message,)
        clone.message = message
        clone.explained = explained
        return clone


class ProviderApiError(ProviderCallFailed):
    """The provider answered with an error: its HTTP status, its own error code and message are kept."""

    def __init__(self, provider: str, message: str, *, http_status: int, code: int | str | None,
                 provider_message: str, body: Any = None, method: str = "", url: str = "", operation: str = "",
                 retry_after_seconds: int | None = None, rate_limit_type: str | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, operation=operation, retry_after_seconds=retry_after_seconds,
                         ambiguous=ambiguous)
        self.http_status = http_status
        self.code = code
        self.provider_message = provider_message
        self.body = body
        self.method = method
        self.url = url  # secrets in the query blanked
        self.rate_limit_type = rate_limit_type  # X-RateLimit-Type on a 429 (Zoom: "QPS" or "Daily-limit")

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """Quotas and server-side failures pass; any other 4xx is the provider refusing the request as it is."""
        return self.http_status in (408, 425, 429) or self.http_status >= 500

    @property
    def status(self) -> int:  # type: ignore[override]
        """What the LMS is answered. The provider refusing what was asked (a past start, a topic too long, a
        conflict) is for the person who saved to correct: a 400 with the provider's reason. Its refusing *us*
        (credentials, permissions, a missing resource) and its failures are ours: a 500."""
        return 400 if self.http_status in (400, 409, 422) else 500


class ProviderUnreachable(ProviderCallFailed):
    """No answer: the connection failed, dropped, or the provider did not answer in time."""

    def __init__(self, provider: str, message: str, *, reason: str, operation: str = "",
                 ambiguous: bool = False) -> None:
        super().__init__(provider, message, operation=operation, ambiguous=ambiguous)
        self.reason = reason


class RateLimitExceeded(ProviderCallFailed):
    """Our own rate limiter had no slot within the call's wait: nothing was sent to the provider."""

    sent = False

    def __init__(self, provider: str, message: str, *, quota: Quota, retry_after_seconds: int,
                 operation: str = "") -> None:
        super().__init__(provider, message, operation=operation, retry_after_seconds=retry_after_seconds)
        self.quota = quota


class CircuitOpen(ProviderCallFailed):
    """The account's circuit breaker is open after repeated outages: nothing was sent to the provider."""

    sent = False


class ProviderUrlRefused(ProviderCallFailed):
    """The SSRF guard (`url_guard`) refused the URL or the address it resolved to: nothing was sent, and waiting
    will not help; the connection's settings (or the server's allow-list) must change."""

    sent = False
    transient = False
