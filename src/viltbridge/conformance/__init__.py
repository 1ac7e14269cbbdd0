"""`viltbridge conformance`: plays Cornerstone's side of the vILT contract against any connector's base URL.

The kit talks HTTP only and imports nothing of viltbridge's server side (no core, store, providers): it must judge
other connectors as fairly as ours, and a shared import could make ours pass by construction.
"""
