"""Reading the official OpenAPI documents the simulators are checked against (Zoom, Webex): one loader, one way
to inline references and to read an operation, shared by every provider's spec-conformance test."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def load_spec(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return dict(json.load(handle))


def resolve(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """Inline `#/components/schemas/...` references (the parts the simulators answer have no cycles)."""
    assert depth < 60, "reference cycle"
    if isinstance(node, dict):
        if "$ref" in node:
            return resolve(components[node["$ref"].rsplit("/", 1)[1]], components, depth + 1)
        return {key: resolve(value, components, depth + 1) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, components, depth + 1) for item in node]
    return node


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(spec["paths"][path][method.lower()])
