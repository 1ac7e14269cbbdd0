"""The provider payload fixtures: realistic bodies kept with each provider in
`src/viltbridge/providers/<kind>/fixtures/`, found through the installed package (not from where a test file sits).
A wrong name fails with the names that exist."""

from __future__ import annotations

import fnmatch
import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any


def fixture_folder(kind: str) -> Traversable:
    """The `fixtures/` folder of provider `kind`'s package."""
    folder = resources.files(f"viltbridge.providers.{kind}") / "fixtures"
    if not folder.is_dir():
        raise FileNotFoundError(f"provider '{kind}' has no fixtures folder ({folder})")
    return folder


def fixture_names(kind: str, pattern: str = "*") -> list[str]:
    """The file names in `kind`'s fixtures matching the glob `pattern`, sorted."""
    return sorted(entry.name for entry in fixture_folder(kind).iterdir()
                  if entry.is_file() and fnmatch.fnmatch(entry.name, pattern))


def fixture_bytes(kind: str, name: str) -> bytes:
    """The raw bytes of fixture `name` (a file name, `.json` included), as a provider would send them."""
    entry = fixture_folder(kind) / name
    if not entry.is_file():
        raise FileNotFoundError(f"no fixture '{name}' for provider '{kind}'; "
                                f"its fixtures are: {', '.join(fixture_names(kind))}")
    return entry.read_bytes()


def fixture_json(kind: str, name: str) -> Any:
    """Fixture `name` parsed as JSON."""
    return json.loads(fixture_bytes(kind, name))
