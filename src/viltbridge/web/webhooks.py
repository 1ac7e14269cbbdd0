"""Provider webhooks: `POST /webhooks/<connection>`. No LMS credentials: each delivery is verified on its raw body
with the connection's provider secret, then its events are kept once each."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from viltbridge.core.errors import DomainError, Forbidden, NotFound
from viltbridge.store import repository
from viltbridge.web.context import AppContext

log = logging.getLogger("viltbridge.webhooks")

router = APIRouter(tags=["Provider webhooks"])


@router.post(
    "/webhooks/{connection}",
    summary="A provider's webhook delivery for one connection (signature-verified on the raw body)",
    responses={
        200: {"description": "Received (or the provider's challenge answered)"},
        400: {"description": "Not a delivery this provider sends"},
        403: {"description": "Signature missing, wrong or stale; or the connection is deactivated"},
        404: {"description": "No such connection, or its provider sends no webhooks"},
    },
)
async def receive(request: Request, connection: Annotated[str, Path(max_length=100)]) -> Any:
    ctx: AppContext = request.app.state.ctx
    raw = await request.body()
    try:
        async with ctx.db.reader() as db:
            row = await db.run_sync(repository.connection_row_by_name_readonly, connection)
        if row is None:
            raise NotFound(f"There is no connection named '{connection}'.")
        if not row.active:
            raise Forbidden(f"The connection '{connection}' is deactivated.")
        settings = repository.connection_from_row(row, ctx.keyring)
        provider = ctx.providers.for_connection(settings)
        if not provider.capabilities.webhooks:
            raise NotFound(f"The {provider.kind} provider sends no webhooks.")
        delivery = provider.read_webhook(raw, dict(request.headers), ctx.clock.now())
    except DomainError as exc:
        # A failed signature is a misconfigured secret or someone else's post: worth an operator's attention.
        level = logging.WARNING if isinstance(exc, Forbidden) else logging.INFO
        log.log(level, "webhook for %s refused (%s): %s", connection, exc.status, exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if delivery.events:
        async with ctx.db.transaction() as db:
            new = await db.run_sync(repository.store_provider_events, row.id, list(delivery.events), ctx.clock.now())
        log.info("webhook for %s: %d event(s), %d new", connection, len(delivery.events), new)
    return JSONResponse(delivery.reply or {"status": "received"})
