"""Cisco Webex Meetings provider: adapter, REST client, webhooks and a local simulator."""
