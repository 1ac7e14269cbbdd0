"""Provider webhooks: `POST /webhooks/<connection>`. No LMS credentials: each delivery is verified on its raw body
with the connection's provider secret, then its events are kept once each."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from viltbridge.app import webhooks
from viltbridge.app.context import context_of
from viltbridge.core.errors import DomainError

log = logging.getLogger("viltbridge.webhooks")

router = APIRouter(tags=["Provider webhooks"])


# The one answer to a delivery this server cannot attribute to a provider: it names no connection, no provider kind
# and no state, so probing webhook URLs tells an outsider nothing. The log says which check failed.
NOT_VERIFIED = ("The delivery was refused: its signature is missing, wrong or stale for this webhook address. Check "
                "the address and the webhook secret configured at the provider.")


def _refused(connection: str, reason: str) -> JSONResponse:
    # A failed signature is a misconfigured secret or someone else's post: worth an operator's attention.
    log.warning("webhook for %s refused (403): %s", connection, reason)
    return JSONResponse({"error": NOT_VERIFIED}, status_code=403)


@router.post(
    "/webhooks/{connection}",
    summary="A provider's webhook delivery for one connection (signature-verified on the raw body)",
    responses={
        200: {"description": "Received (or the provider's challenge answered)"},
        400: {"description": "Signed, but not a delivery this provider sends"},
        403: {"description": "Not verified (no such connection, no webhooks for its provider, a signature missing, "
                             "wrong or stale: one answer for all); or signed, for a deactivated connection"},
    },
)
async def receive(request: Request, connection: Annotated[str, Path(max_length=100)]) -> Any:
    try:
        reply = await webhooks.receive(context_of(request), connection, await request.body(), dict(request.headers))
    except webhooks.NotVerified as exc:
        return _refused(connection, exc.reason)
    except DomainError as exc:  # a verified sender: told what is wrong (not something it sends, or deactivated)
        log.log(logging.WARNING if exc.status == 403 else logging.INFO, "webhook for %s refused (%s): %s",
                connection, exc.status, exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse(reply)
