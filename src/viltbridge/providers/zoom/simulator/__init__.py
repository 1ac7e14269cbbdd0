"""The faithful local Zoom simulator: `server` (the HTTP app, `ZoomSimulator` and `running_simulator`), `api` (what each
API operation does) and `state` (the simulated world and its scenario API, plain Python).

`python -m viltbridge.providers.zoom.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.zoom.simulator.api import API_ENDPOINTS
from viltbridge.providers.zoom.simulator.server import ZoomSimulator, build_app, running_simulator

__all__ = ["API_ENDPOINTS", "ZoomSimulator", "build_app", "running_simulator"]
