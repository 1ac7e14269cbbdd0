"""Provider webhook deliveries: verified on the raw body with the connection's provider secret, each event kept once.

A delivery that cannot be attributed to a provider (no such connection, a provider that sends none, a signature
missing, wrong or stale) is `NotVerified`: the caller gives one answer for all of them, so probing webhook addresses
tells an outsider nothing. Only a verified sender learns that the connection is deactivated."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from viltbridge import metrics
from viltbridge.app.uow import reading, unit_of_work
from viltbridge.core.errors import DomainError, Forbidden
from viltbridge.store import repository

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

log = logging.getLogger("viltbridge.webhooks")


class NotVerified(Exception):
    """The delivery is not from the connection's provider; `reason` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def receive(ctx: AppContext, connection: str, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Keep the delivery's events and return the reply the provider expects (its challenge answered, or
    `{"status": "received"}`). Raises NotVerified, Forbidden (a verified delivery for a deactivated connection) or
    another DomainError (signed, but not something this provider sends)."""
    sender = _Sender()
    try:
        reply, new_events, events = await _receive(ctx, connection, raw_body, headers, sender)
    except (NotVerified, DomainError):
        metrics.webhook_deliveries.labels(sender.provider, "refused").inc()
        raise
    # A delivery whose every event was kept before is the provider sending it again.
    outcome = "duplicate" if events and not new_events else "accepted"
    metrics.webhook_deliveries.labels(sender.provider, outcome).inc()
    return reply


@dataclass
class _Sender:
    """Who a delivery claims to come from, for the metrics: known once the connection is found."""

    provider: str = "unknown"


async def _receive(ctx: AppContext, connection: str, raw_body: bytes, headers: Mapping[str, str],
                   sender: _Sender) -> tuple[dict[str, Any], int, int]:
    """The reply, the events new to the ledger and the events in the delivery."""
    async with reading(ctx) as read:
        row = await read.db.run_sync(repository.connection_row_by_name_readonly, connection)
    if row is None:
        raise NotVerified("there is no connection of that name")
    provider = ctx.providers.for_connection(repository.connection_from_row(row, ctx.keyring))
    sender.provider = provider.kind
    if not provider.capabilities.webhooks:
        raise NotVerified(f"the {provider.kind} provider sends no webhooks")
    try:
        delivery = provider.read_webhook(raw_body, headers, ctx.clock.now())
    except Forbidden as exc:
        raise NotVerified(exc.message) from None
    if not row.active:
        raise Forbidden(f"The connection '{connection}' is deactivated; activate it to receive deliveries.")
    new = 0
    if delivery.events:
        async with unit_of_work(ctx) as work:
            new = await work.db.run_sync(repository.store_provider_events, row.id, list(delivery.events),
                                         ctx.clock.now())
        log.info("webhook for %s: %d event(s), %d new", connection, len(delivery.events), new)
    return delivery.reply or {"status": "received"}, new, len(delivery.events)
