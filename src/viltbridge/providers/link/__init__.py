"""The `link` provider: a meeting room URL per part from a template; no provider account needed."""
