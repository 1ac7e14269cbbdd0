"""The `zoom` provider: Zoom Meetings API v2 with Server-to-Server OAuth."""
