"""`viltbridge --help` and the small commands start fast because they do not load the application: the web app,
the database layer, uvicorn and the providers are imported by the commands that use them, when they run, and
LeanTyper (viltbridge.lean_typer) steps around what typer would load for nothing: pydantic on every command, markdown
and traceback rendering for help. Checked on the modules a fresh interpreter has loaded (not on time, which depends on
the machine), and on help being the same, byte for byte, with or without LeanTyper's stand-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "httpx2", "viltbridge.web", "viltbridge.providers",
         "viltbridge.store", "viltbridge.jobs",
         "pydantic",  # typer coerces a parameter with it; --help was one (lean_typer)
         "markdown_it", "pygments", "rich.markdown", "rich.traceback"]  # typer.rich_utils imports them (lean_typer)
NOT_FOR_KEYGEN = ["rich"]  # keygen prints one line with typer.echo

LOADED_AFTER = """
import json, sys
from typer.testing import CliRunner
from viltbridge.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == (2 if sys.argv[1:] in ([], ["nosuch"]) else 0), result.output
print(json.dumps(sorted(sys.modules)))
"""

EVERY_HELP = """
import json, os, sys
if os.environ.get("PRELOAD_RICH_MARKDOWN_AND_TRACEBACK"):
    import rich.markdown, rich.traceback  # so typer.rich_utils gets the real modules, as without LeanTyper
import typer
from typer.testing import CliRunner
from viltbridge.cli import app

def paths(command, path):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, [*path, name])

helps = {}
for path in paths(typer.main.get_command(app), []):
    result = CliRunner().invoke(app, [*path, "--help"], color=True)
    helps[" ".join(path)] = [result.exit_code, result.output]
for usage_error in [[], ["connection"], ["nosuch"], ["keygen", "--bogus"], ["connection", "create"]]:
    result = CliRunner().invoke(app, usage_error, color=True)
    helps["error: " + " ".join(usage_error)] = [result.exit_code, result.output]
print(json.dumps({"helps": helps, "loaded": sorted(sys.modules)}))
"""

MARKDOWN_HELP = """
import json, os, sys
if os.environ.get("PRELOAD_RICH_MARKDOWN_AND_TRACEBACK"):
    import rich.markdown, rich.traceback
import typer
from typer.testing import CliRunner
from viltbridge.lean_typer import LeanTyper

app = LeanTyper(rich_markup_mode="markdown")

@app.command()
def greet(name: str) -> None:
    \"\"\"Say **hello** to `NAME`:

    * once
    * politely
    \"\"\"

@app.command()
def other() -> None:
    \"\"\"A second command, so that the app is a group.\"\"\"

result = CliRunner().invoke(app, ["greet", "--help"], color=True)
print(json.dumps({"output": result.output, "code": result.exit_code}))
"""

FALLBACK = """
import sys
from viltbridge import lean_typer
lean_typer.DEFERRED_FOR_HELP = {"rich.markdown": "NotWhatTyperImports"}
lean_typer.import_help_renderer()
assert "typer.rich_utils" not in sys.modules  # the stand-in lacked Markdown: nothing half-imported is left
assert "rich.markdown" not in sys.modules  # nor the stand-in itself
import rich.markdown, typer.rich_utils
assert typer.rich_utils.Markdown is rich.markdown.Markdown
print("ok")
"""


def run_python(script: str, *args: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          check=True, env={**os.environ, "COLUMNS": "100", "FORCE_COLOR": "1", **env})
    return done.stdout.splitlines()[-1]


def loaded_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after running `viltbridge ARGS`."""
    return set(json.loads(run_python(LOADED_AFTER, *args)))


@pytest.mark.pure
@pytest.mark.parametrize("args", [["--help"], ["connection", "--help"], ["connection", "create", "--help"],
                                  ["jobs", "--help"], ["keygen"], [], ["nosuch"]], ids=lambda args: " ".join(args)
                         or "no arguments")
def test_help_and_keygen_load_none_of_the_application(args: list[str]) -> None:
    loaded = loaded_after(*args)
    heavy = HEAVY + (NOT_FOR_KEYGEN if args == ["keygen"] else [])
    assert not [name for name in heavy if name in loaded]


@pytest.mark.pure
def test_every_help_is_the_same_with_or_without_the_stand_ins() -> None:
    lean = json.loads(run_python(EVERY_HELP))
    plain = json.loads(run_python(EVERY_HELP, PRELOAD_RICH_MARKDOWN_AND_TRACEBACK="1"))
    assert "markdown_it" not in lean["loaded"] and "markdown_it" in plain["loaded"]
    assert len(lean["helps"]) > 20  # every group and command, not only the top
    assert all(code == 0 for path, (code, _) in lean["helps"].items() if not path.startswith("error: "))
    assert lean["helps"]["error: nosuch"][0] == 2 and "No such command" in lean["helps"]["error: nosuch"][1]
    assert "\x1b[" in lean["helps"][""][1]  # styles are compared too
    assert lean["helps"] == plain["helps"]


@pytest.mark.pure
def test_markdown_help_is_drawn_by_the_real_markdown_through_the_stand_in() -> None:
    lean = json.loads(run_python(MARKDOWN_HELP))
    plain = json.loads(run_python(MARKDOWN_HELP, PRELOAD_RICH_MARKDOWN_AND_TRACEBACK="1"))
    assert lean["code"] == 0 and "**hello**" not in lean["output"] and "hello" in lean["output"]
    assert lean == plain


@pytest.mark.pure
def test_a_name_typer_imports_without_a_stand_in_leaves_typer_to_import_the_real_modules() -> None:
    assert run_python(FALLBACK) == "ok"


@pytest.mark.pure
def test_a_stand_in_class_behaves_as_the_class_it_stands_for() -> None:
    from rich.markdown import Markdown
    from rich.text import Text

    from viltbridge.lean_typer import stand_in_class

    stand_in = stand_in_class("rich.markdown", "Markdown")
    made = stand_in("*hi*", style="bold")
    assert type(made) is Markdown and made.style == "bold"
    assert isinstance(made, stand_in) and not isinstance(Text("x"), stand_in)
    assert issubclass(Markdown, stand_in)
    assert stand_in.elements is Markdown.elements  # class attributes are the real class's
    assert isinstance(made, stand_in | Text)  # typer's annotations make unions of it


def test_a_connection_command_loads_only_the_provider_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VILTBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("VILTBRIDGE_KEY_FILE", str(tmp_path / "cli.key"))
    loaded = loaded_after("connection", "create", "acme", "--provider", "link")
    assert "viltbridge.providers.link.settings" in loaded
    others = ("bbb", "goto", "jitsi", "teams", "webex", "zoom")
    assert not [kind for kind in others if f"viltbridge.providers.{kind}" in loaded]
    assert "viltbridge.web" not in loaded and "uvicorn" not in loaded


@pytest.mark.pure
def test_a_stand_in_used_while_it_still_stands_in_raises_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were typer.rich_utils to draw a Markdown while it is imported, the stand-in would find itself in sys.modules:
    an ImportError (which falls back to the real modules), not an endless recursion."""
    import types

    from viltbridge.lean_typer import stand_in_class

    stand_in = stand_in_class("stand_in_probe", "Thing")
    module = types.ModuleType("stand_in_probe")
    module.Thing = stand_in  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stand_in_probe", module)
    with pytest.raises(ImportError, match=r"stand_in_probe\.Thing"):
        stand_in()


@pytest.mark.pure
def test_the_command_leaves_its_objects_to_the_exit_not_to_a_last_garbage_collection() -> None:
    """main() freezes the garbage collector as the process ends: its last collections over every object typer and
    rich made were a quarter of `--help`'s time."""
    script = """
import gc, sys
sys.argv = ["viltbridge", "keygen"]
from viltbridge.cli import main
frozen_before = gc.get_freeze_count()
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(frozen_before, gc.get_freeze_count())
"""
    before, after = map(int, run_python(script).split())
    assert before == 0 and after > 1000
