"""Running the selected cases and reporting them: a table for people (rich), JUnit XML for CI systems, JSON for
scripts. All three come from the same `Result` list, so they cannot disagree.

A case that raises something other than `CaseFailed`/`CaseSkipped` (the connector closed the connection, a
scenario could not be played) is a failure with the exception in its reason: the kit never stops half-way.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from viltbridge.conformance.checks import Case, CaseFailed, CaseSkipped, Context

Outcome = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Result:
    id: str
    title: str
    outcome: Outcome
    reason: str
    seconds: float
    tags: tuple[str, ...]


def run_cases(cases: Iterable[Case], ctx: Context,
              progress: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for item in cases:
        began = time.perf_counter()
        outcome: Outcome = "passed"
        try:
            reason = item.run(ctx) or ""
        except CaseFailed as failed:
            outcome, reason = "failed", str(failed)
        except CaseSkipped as skipped:
            outcome, reason = "skipped", str(skipped)
        except Exception as exc:  # any other breakage is this case's failure; the run goes on
            outcome, reason = "failed", f"{exc.__class__.__name__}: {exc}"
        result = Result(item.id, item.title, outcome, reason, round(time.perf_counter() - began, 3),
                        tuple(sorted(item.tags)))
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def all_passed(results: list[Result]) -> bool:
    """Exit code 0 only if every selected case passed: a skipped case was selected but proved nothing."""
    return bool(results) and all(result.outcome == "passed" for result in results)


def table(results: list[Result]) -> Table:
    grid = Table(title="vILT conformance", expand=True)
    grid.add_column("case", no_wrap=True)
    grid.add_column("result", no_wrap=True)
    grid.add_column("s", no_wrap=True, justify="right")
    grid.add_column("reason / note", overflow="fold")
    style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
    for result in results:
        grid.add_row(result.id, Text(result.outcome, style[result.outcome]), f"{result.seconds:.2f}",
                     Text(result.reason))  # Text: quoted bodies may hold [brackets] rich would read as markup
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("passed", "failed", "skipped")}
    grid.caption = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    return grid


def print_table(results: list[Result], console: Console) -> None:
    """The table, then each failure's reason whole on its own lines (easy to read in a narrow CI log)."""
    console.print(table(results))
    for result in results:
        if result.outcome == "failed":
            console.print(Text.assemble(("FAILED ", "bold red"), f"{result.id}: {result.reason}"), soft_wrap=True)


def as_json(results: list[Result], target: str) -> dict[str, Any]:
    return {
        "target": target, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "passed": all_passed(results),
        "counts": {outcome: sum(r.outcome == outcome for r in results) for outcome in ("passed", "failed", "skipped")},
        "cases": [asdict(result) for result in results],
    }


def write_json(results: list[Result], target: str, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(as_json(results, target), handle, indent=2)
        handle.write("\n")


_NOT_XML = str.maketrans({code: "?" for code in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)})


def _xml_text(text: str) -> str:
    """Reasons quote what connectors answered, control characters included; XML 1.0 cannot hold those."""
    return "".join("?" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text.translate(_NOT_XML))


def junit_xml(results: list[Result], target: str) -> bytes:
    suite = ET.Element("testsuite", {
        "name": "vilt-conformance", "tests": str(len(results)),
        "failures": str(sum(r.outcome == "failed" for r in results)),
        "skipped": str(sum(r.outcome == "skipped" for r in results)), "errors": "0",
        "time": f"{sum(r.seconds for r in results):.3f}",
    })
    ET.SubElement(ET.SubElement(suite, "properties"), "property", {"name": "target", "value": target})
    for result in results:
        group, _, name = result.id.partition(".")
        element = ET.SubElement(suite, "testcase", {"classname": f"conformance.{group}", "name": name or group,
                                                    "time": f"{result.seconds:.3f}"})
        if result.outcome == "failed":
            reason = _xml_text(result.reason)
            ET.SubElement(element, "failure", {"message": reason[:500]}).text = reason
        elif result.outcome == "skipped":
            ET.SubElement(element, "skipped", {"message": _xml_text(result.reason)})
    root = ET.Element("testsuites")
    root.append(suite)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_junit(results: list[Result], target: str, path: str) -> None:
    with open(path, "wb") as handle:
        handle.write(junit_xml(results, target))
