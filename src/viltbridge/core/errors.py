"""Errors the domain raises. Each carries a message written for the person who will read it.

Cornerstone shows `error.message` to whoever clicked (an admin saving a session, a learner launching),
so messages say what happened and what to do, never how the code failed.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base class; `status` is the HTTP-like code the LMS contract maps it to."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """`fields` names the input each problem belongs to (a setting, a form field), so a form can show the problem
    next to it; `message` still says everything on its own."""

    status = 400

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields or {})


class NotAuthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class ProviderFailed(DomainError):
    """The meeting provider failed after retries; nothing was changed on our side."""

    status = 500

    # Worth trying again later (an outage, a timeout, a quota): the work is kept and retried in the background.
    # False for answers that will not change by waiting (the provider refused the request as it is).
    transient = True

    # False when nothing reached the provider (our own rate limiter or circuit breaker held the call back): waiting
    # for `retry_after_seconds` is all it takes, and background work does not count it as a failed attempt.
    sent = True

    def __init__(self, provider: str, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.retry_after_seconds = retry_after_seconds


class NotReady(DomainError):
    """Data exists only later (attendance before the provider has it); the message says when to retry. A 4xx: not
    a failure of ours (a 5xx would say SystemError), and there is nothing yet to be found."""

    status = 404

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
