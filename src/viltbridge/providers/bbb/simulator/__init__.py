"""The faithful local BigBlueButton simulator: `server` (the HTTP app, `BbbSimulator` and `running_simulator`) and
`state` (the simulated world and its scenario API, plain Python).

`python -m viltbridge.providers.bbb.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.bbb.simulator.server import BbbSimulator, build_app, running_simulator

__all__ = ["BbbSimulator", "build_app", "running_simulator"]
