"""`LeanTyper`: a `typer.Typer` whose groups and commands step around two things typer (0.29) loads for nothing on
every start, each as long to import as typer itself, without changing a byte of what it prints.

- A command run: typer leaves `--help` None when it is not given, and turning that None into a value builds a
  pydantic TypeAdapter, so every command imports pydantic (as long as typer's own import) only to learn that no help
  was asked for. Here `--help` is False unless given, which is what a flag not given means; typer keeps a bool as is.
- Help and usage errors: typer draws them with `typer.rich_utils`, which imports `rich.markdown` (markdown-it,
  pygments) and `rich.traceback` at its top, again as long as typer's own import, for `Markdown` (drawn only when
  the app's `rich_markup_mode` is "markdown") and `Traceback` (only for typer's pretty exceptions). Both names are
  imported here at their first use instead. Should a typer release ask those modules for a name this module does not
  defer, typer.rich_utils is imported as it is: slower, never different.

The CLI's tests check the modules a fresh `--help` and `keygen` load, and that help is the same with and without
this (tests/test_cli_startup.py)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# The names typer.rich_utils imports from modules it needs only for what they name.
DEFERRED_FOR_HELP = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _ImportedAtFirstUse(type):
    """The type of a stand-in class: calling it, looking up an attribute on it or checking an instance against it
    imports the real class and hands over to it."""

    real_module: str
    real_name: str

    def real(cls) -> Any:
        real = getattr(importlib.import_module(cls.real_module), cls.real_name)
        if real is cls:  # used while it still stands in, during the import of typer.rich_utils: let that fall back
            raise ImportError(f"{cls.real_module}.{cls.real_name} is used before its module may be imported")
        return real

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, attribute: str) -> Any:
        return getattr(cls.real(), attribute)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.real())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.real())


def stand_in_class(module: str, name: str) -> type:
    """A class that behaves as `module.name` and imports that module only when it is first used."""
    return _ImportedAtFirstUse(name, (), {"real_module": module, "real_name": name, "__module__": module})


def _stand_in_module(module: str, name: str) -> types.ModuleType:
    stand_in = types.ModuleType(module, f"Stands in for {module} while typer.rich_utils is imported.")
    setattr(stand_in, name, stand_in_class(module, name))
    return stand_in


def import_help_renderer() -> None:
    """Import typer.rich_utils with the names of DEFERRED_FOR_HELP imported at their first use, unless something
    imported it (or those modules) before."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {module: _stand_in_module(module, name) for module, name in DEFERRED_FOR_HELP.items()
                 if module not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    except ImportError:
        pass  # it wanted another name of those modules: typer imports it itself, with the real ones, when it draws
    finally:
        for module in stand_ins:
            del sys.modules[module]


@contextmanager
def _help_renderer_for_usage_errors() -> Iterator[None]:
    """typer reports a usage error (no arguments to a group, a missing argument, an unknown command or option) with
    typer.rich_utils too, importing it as it is unless it is imported already."""
    try:
        yield
    except typer.TyperException:
        import_help_renderer()
        raise


class _LeanStart:
    """What LeanGroup and LeanCommand add to typer's classes (see the module's docstring)."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.default is None:
            option.default = False
        return option

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import_help_renderer()
        super().format_help(ctx, formatter)  # type: ignore[misc]

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _help_renderer_for_usage_errors():
            return super().make_context(*args, **kwargs)  # type: ignore[misc]

    def invoke(self, ctx: Any) -> Any:
        with _help_renderer_for_usage_errors():
            return super().invoke(ctx)  # type: ignore[misc]


class LeanGroup(_LeanStart, TyperGroup):
    pass


class LeanCommand(_LeanStart, TyperCommand):
    pass


class LeanTyper(typer.Typer):
    """A typer.Typer whose groups and commands are LeanGroup and LeanCommand; with no arguments, it shows its help."""

    def __init__(self, **options: Any) -> None:
        super().__init__(cls=LeanGroup, no_args_is_help=True, **options)

    def command(self, *args: Any, **options: Any) -> Any:
        return super().command(*args, cls=LeanCommand, **options)
