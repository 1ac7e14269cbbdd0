"""Meeting providers: one folder per kind, the same files in each; `registry.py` names them all."""
