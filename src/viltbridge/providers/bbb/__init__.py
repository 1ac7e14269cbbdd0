"""BigBlueButton: checksum-signed HTTP API, per-person signed joins, attendance from the analytics callback."""
