"""The faithful local Jitsi simulator: `server` (the HTTP app, `JitsiSimulator` and `running_simulator`) and `state`
(the simulated world and its scenario API, plain Python).

`python -m viltbridge.providers.jitsi.simulator` serves it in the foreground (see `server.main`).
"""

from viltbridge.providers.jitsi.simulator.server import JitsiSimulator, build_app, running_simulator

__all__ = ["JitsiSimulator", "build_app", "running_simulator"]
