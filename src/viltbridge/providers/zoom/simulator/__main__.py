"""`python -m viltbridge.providers.zoom.simulator`: the Zoom simulator in the foreground."""

from viltbridge.providers.zoom.simulator.server import main

if __name__ == "__main__":
    main()
