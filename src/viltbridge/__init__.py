"""viltbridge: a vILT connector between an LMS (Cornerstone first) and meeting providers."""

__version__ = "0.1.0"
