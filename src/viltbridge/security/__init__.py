"""Security that is not provider-specific: today the sign-in throttle."""
