"""`python -m viltbridge.providers.bbb.simulator`: the BigBlueButton simulator in the foreground."""

from viltbridge.providers.bbb.simulator.server import main

if __name__ == "__main__":
    main()
