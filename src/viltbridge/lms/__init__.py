"""Inbound LMS contracts. Each LMS is a sibling folder; Cornerstone is the first."""
