"""Background work. Today: periodic upkeep run inside `serve` (or not, with --no-worker)."""
