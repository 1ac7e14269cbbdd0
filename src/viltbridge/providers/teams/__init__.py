"""Microsoft Teams via Microsoft Graph."""
