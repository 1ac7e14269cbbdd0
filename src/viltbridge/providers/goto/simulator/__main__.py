"""`python -m viltbridge.providers.goto.simulator`: the GoTo Training simulator in the foreground."""

from viltbridge.providers.goto.simulator.server import main

if __name__ == "__main__":
    main()
