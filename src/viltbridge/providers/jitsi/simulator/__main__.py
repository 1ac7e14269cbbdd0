"""`python -m viltbridge.providers.jitsi.simulator`: the Jitsi simulator in the foreground."""

from viltbridge.providers.jitsi.simulator.server import main

if __name__ == "__main__":
    main()
