"""The shared rate-limit store (Redis) unreachable: provider calls go on, counted in this process meanwhile (as
without a shared store), rather than every save and launch failing for a counter."""

from __future__ import annotations

import pytest

from tests.processes import free_port
from viltbridge.providers.http import Quota, QuotaExhausted, RateLimits, redis_buckets

pytestmark = pytest.mark.pure


async def test_calls_are_counted_in_the_process_while_the_shared_store_is_unreachable() -> None:
    limits = RateLimits(redis_buckets(f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there
    per_second = Quota("zoom:acct:light:second", limit=2, seconds=60)
    await limits.acquire([per_second], max_wait=0)
    await limits.acquire([per_second], max_wait=0)
    with pytest.raises(QuotaExhausted):  # still limited: the local count holds the quota
        await limits.acquire([per_second], max_wait=0)
    limits.close()
