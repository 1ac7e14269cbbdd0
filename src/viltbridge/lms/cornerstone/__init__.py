"""The Cornerstone vILT connector contract (see docs: cornerstone-vilt-contract.md)."""
