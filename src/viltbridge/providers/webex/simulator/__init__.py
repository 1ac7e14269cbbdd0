"""The faithful local Webex simulator: `server` (the HTTP app, `WebexSimulator` and `running_simulator`), `api` (what
each API operation does) and `state` (the simulated world and its scenario API, plain Python).

`python -m viltbridge.providers.webex.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.webex.simulator.api import API_ENDPOINTS
from viltbridge.providers.webex.simulator.server import WebexSimulator, build_app, running_simulator

__all__ = ["API_ENDPOINTS", "WebexSimulator", "build_app", "running_simulator"]
