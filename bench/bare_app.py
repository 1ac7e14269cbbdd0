"""The baseline: one Starlette JSON route shaped like the launch endpoint, served like `viltbridge serve`.

Usage: python -m bench.bare_app PORT BODY_BYTES [PROCESSES]
"""

from __future__ import annotations

import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BODY_BYTES = "BENCH_BARE_BODY_BYTES"


def create_app(body_bytes: int) -> Starlette:
    body = {"status": "Success", "correlationId": "0" * 32, "timestamp": "2026-01-01T00:00:00.000+00:00",
            "data": {"joinUrl": ""}}
    filler = max(0, body_bytes - len(JSONResponse(body).body))
    body["data"] = {"joinUrl": "x" * filler}

    async def launch(_: Request) -> JSONResponse:
        return JSONResponse(body)

    return Starlette(routes=[Route("/session/{session_id}/user/{email}/url", launch)])


def app_from_environment() -> Starlette:
    """Each process of a multi-process run builds the app here (uvicorn needs an import string for that)."""
    return create_app(int(os.environ[BODY_BYTES]))


def main() -> None:
    port, body_bytes = int(sys.argv[1]), int(sys.argv[2])
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.environ[BODY_BYTES] = str(body_bytes)
    # The same uvicorn settings as `viltbridge serve` (src/viltbridge/cli.py), --workers included.
    uvicorn.run("bench.bare_app:app_from_environment", factory=True, workers=processes if processes > 1 else None,
                host="127.0.0.1", port=port, access_log=False, log_level="warning", server_header=False,
                proxy_headers=False)


if __name__ == "__main__":
    main()
