"""`make bench` (cli_startup): how long the `viltbridge` command takes to start, against `python -c "import typer"`.

Each command runs BENCH_CLI_RUNS times as a fresh process (what an operator's shell does), one after another; the
median wall time of each is reported, with its ratio to the baseline (the CLI library alone: what no command can go
under). Commands: `viltbridge --help`, `viltbridge keygen` (no database), `viltbridge connection list` and
`viltbridge connection create` on a SQLite database of the run's own (migrated first, so every timed run finds the
schema current), and `python -c "import typer, sqlalchemy.orm"`, the floor of the commands that open the database.
Every command runs once untimed first; bytecode is cached (in the run's own folder) as for an installed package.
Target (issue 16): `--help` and `keygen` in under 2 x the baseline. Writes bench/results/cli_startup.json.

Environment: BENCH_CLI_RUNS (15), BENCH_RESULTS_DIR (bench/results).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.processes import VILTBRIDGE, machine, write_results

BASELINE = "python -c 'import typer'"
DATABASE_FLOOR = "python -c 'import typer, sqlalchemy.orm'"
TARGET_RATIO = 2.0  # x the baseline, for the commands that open no database
TARGETED = ("viltbridge --help", "viltbridge keygen")


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - began


def main() -> int:
    runs = int(os.environ.get("BENCH_CLI_RUNS", "15"))
    with tempfile.TemporaryDirectory(prefix="vb-cli-") as tmp:
        where = Path(tmp)
        # Bytecode cached, in a folder of the run's own, as an installed package runs: with PYTHONDONTWRITEBYTECODE
        # set (as on the project's machines) viltbridge's own modules, installed editable, would be compiled from
        # source on every start while typer's come compiled from site-packages.
        env = {**{key: value for key, value in os.environ.items()
                  if not key.startswith("VILTBRIDGE_") and key != "PYTHONDONTWRITEBYTECODE"},
               "PYTHONPYCACHEPREFIX": str(where / "pycache"),
               "VILTBRIDGE_DATABASE_URL": f"sqlite:///{where / 'viltbridge.db'}",
               "VILTBRIDGE_KEY_FILE": str(where / "viltbridge.key")}
        subprocess.run([VILTBRIDGE, "migrate"], env=env, cwd=where, check=True, capture_output=True)
        names = iter(range(10**6))
        commands: dict[str, Callable[[], list[str]]] = {
            BASELINE: lambda: [sys.executable, "-c", "import typer"],
            "viltbridge --help": lambda: [VILTBRIDGE, "--help"],
            "viltbridge keygen": lambda: [VILTBRIDGE, "keygen"],
            "viltbridge connection list": lambda: [VILTBRIDGE, "connection", "list"],
            "viltbridge connection create": lambda: [VILTBRIDGE, "connection", "create", f"c{next(names)}"],
            DATABASE_FLOOR: lambda: [sys.executable, "-c", "import typer, sqlalchemy.orm"],
        }
        for command in commands.values():  # once untimed: the bytecode cache filled, the files read once
            timed(command(), env, where)
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):  # interleaved, so a burst of load on the machine touches every command alike
            for name, command in commands.items():
                seconds[name].append(timed(command(), env, where))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report: dict[str, Any] = {
        "benchmark": f"median wall time of {runs} fresh processes per command, against {BASELINE}",
        "machine": machine(), "runs": runs,
        "results": {name: {"median_seconds": round(medians[name], 3), "min_seconds": round(min(values), 3),
                           "max_seconds": round(max(values), 3)} for name, values in seconds.items()},
        "ratios": {f"{name} / import typer": round(medians[name] / medians[BASELINE], 2)
                   for name in seconds if name != BASELINE},
        "targets": {name: {"target_ratio": TARGET_RATIO, "ratio": round(medians[name] / medians[BASELINE], 2),
                           "met": medians[name] / medians[BASELINE] < TARGET_RATIO} for name in TARGETED},
    }
    path = write_results("cli_startup", report)
    for name, result in report["results"].items():
        ratio = report["ratios"].get(f"{name} / import typer")
        against = f"{ratio:5.2f} x import typer" if ratio is not None else "baseline"
        target = f" (target < {TARGET_RATIO:g} x)" if name in TARGETED else ""
        print(f"{name:40} median {result['median_seconds']:.3f} s  {against}{target}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
