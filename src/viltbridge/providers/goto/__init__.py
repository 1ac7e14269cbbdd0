"""GoTo Training: adapter, REST client and simulator (docs/providers.md §5.3)."""
