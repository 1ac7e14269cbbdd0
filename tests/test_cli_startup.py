"""`viltbridge --help` and the small commands start fast because they do not load the application: the web app,
the database layer, uvicorn and the providers are imported by the commands that use them, when they run. Checked on
the modules a fresh interpreter has loaded (not on time, which depends on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "httpx2", "viltbridge.web", "viltbridge.providers",
         "viltbridge.store", "viltbridge.jobs"]

LOADED_AFTER = """
import json, sys
from typer.testing import CliRunner
from viltbridge.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after running `viltbridge ARGS`."""
    done = subprocess.run([sys.executable, "-c", LOADED_AFTER, *args], capture_output=True, text=True, timeout=60,
                          check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["connection", "--help"], ["connection", "create", "--help"],
                                  ["jobs", "--help"], ["keygen"]], ids=" ".join)
def test_help_and_keygen_load_none_of_the_application(args: list[str]) -> None:
    loaded = loaded_after(*args)
    assert not [name for name in HEAVY if name in loaded]


def test_a_connection_command_loads_only_the_provider_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VILTBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("VILTBRIDGE_KEY_FILE", str(tmp_path / "cli.key"))
    loaded = loaded_after("connection", "create", "acme", "--provider", "link")
    assert "viltbridge.providers.link.settings" in loaded
    others = ("bbb", "goto", "jitsi", "teams", "webex", "zoom")
    assert not [kind for kind in others if f"viltbridge.providers.{kind}" in loaded]
    assert "viltbridge.web" not in loaded and "uvicorn" not in loaded
