"""The faithful local GoTo Training simulator: `server` (the HTTP app, `GotoSimulator` and `running_simulator`), `api`
(what each API operation does) and `state` (the simulated world and its scenario API, plain Python).

`python -m viltbridge.providers.goto.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.goto.simulator.api import API_ENDPOINTS
from viltbridge.providers.goto.simulator.server import GotoSimulator, build_app, running_simulator

__all__ = ["API_ENDPOINTS", "GotoSimulator", "build_app", "running_simulator"]
