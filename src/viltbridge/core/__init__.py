"""The domain: pure Python, no web framework, no HTTP client, no SQL. Time comes from an injected clock."""
