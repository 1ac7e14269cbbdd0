"""How long a provider call may take: its `Budget`, and the two every client uses, `INTERACTIVE` and `BULK`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How long one call may take, all in: waiting for rate-limit slots, attempts and backoff between them."""

    total: float  # seconds, from the call until its result or its error
    max_queue_wait: float  # the longest wait for a client-side rate-limit slot before failing fast
    attempt_timeout: float  # the longest wait for one response
    max_attempts: int = 5
    connect_timeout: float = 5.0


# A person is waiting (a learner's launch, an admin saving a session): answer or fail within seconds.
INTERACTIVE = Budget(total=8.0, max_queue_wait=1.0, attempt_timeout=5.0, max_attempts=3, connect_timeout=3.0)
# A background job (attendance collection, reconciliation): patience, but still bounded.
BULK = Budget(total=120.0, max_queue_wait=60.0, attempt_timeout=30.0, max_attempts=8)
