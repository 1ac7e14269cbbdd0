"""Jitsi Meet: 8x8 Jitsi-as-a-Service (JaaS) and self-hosted Jitsi with token authentication."""
