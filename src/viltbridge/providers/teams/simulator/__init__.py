"""The faithful local Microsoft Teams (Graph) simulator: `server` (the HTTP app, `TeamsSimulator` and
`running_simulator`), `api` (what each API operation does) and `state` (the simulated world and its scenario API, plain
Python).

`python -m viltbridge.providers.teams.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.teams.simulator.api import API_ENDPOINTS
from viltbridge.providers.teams.simulator.server import TeamsSimulator, build_app, running_simulator

__all__ = ["API_ENDPOINTS", "TeamsSimulator", "build_app", "running_simulator"]
