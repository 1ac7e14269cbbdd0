"""`python -m viltbridge.providers.webex.simulator`: the Webex simulator in the foreground."""

from viltbridge.providers.webex.simulator.server import main

if __name__ == "__main__":
    main()
