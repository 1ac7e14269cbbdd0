"""`python -m viltbridge.providers.teams.simulator`: the Microsoft Teams (Graph) simulator in the foreground."""

from viltbridge.providers.teams.simulator.server import main

if __name__ == "__main__":
    main()
