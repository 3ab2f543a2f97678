"""``python -m benchmarks.startup``: what a ``kvruntime get`` costs, as a fresh process.

Issue 15's target: the median wall time of ``kvruntime get`` over 20 fresh
processes is at most 6 x that of ``python -c pass`` (the interpreter alone).
Beside it, the parts: the imports a ``get`` needs (``kvruntime.cli`` with the
runtime and the client), and ``kvruntime --help`` (click and the CLI only).
Prints one line per command (wall and CPU time) and the verdict, which is
on wall time; exits 1 if the target is missed.

The package's bytecode is compiled first, as pip does when it installs a
wheel: an editable checkout under ``PYTHONDONTWRITEBYTECODE`` (this
machine's environment) would otherwise compile every kvruntime module from
source at each start, which no installed copy does.
"""

from __future__ import annotations

import compileall
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

__all__ = ["RUNS", "TARGET", "Timing", "compile_bytecode", "main", "medians"]

RUNS = 20
TARGET = 6.0
APP = "bench:startup.os"


@attrs.frozen(kw_only=True)
class Timing:
    """One command's medians over its fresh processes."""

    wall: float
    #: User + system seconds of the process (less sensitive to a busy machine).
    cpu: float


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def medians(commands: dict[str, list[str]], runs: int = RUNS) -> dict[str, Timing]:
    """Each command's medians over ``runs`` rounds (after one warm-up each).

    In every round each command runs once, in turn, so that a slow moment of
    a shared machine falls on all of them alike rather than on one row.
    """
    for argv in commands.values():
        _run(argv)
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            seen[name].append(_run(argv))
    return {
        name: Timing(
            wall=statistics.median(w for w, _ in times),
            cpu=statistics.median(c for _, c in times),
        )
        for name, times in seen.items()
    }


def compile_bytecode() -> None:
    """Write the bytecode of ``kvruntime`` and ``protocol`` (as a wheel's install does)."""
    import kvruntime
    import protocol

    for package in (kvruntime, protocol):
        for root in package.__path__:
            compileall.compile_dir(root, quiet=1)


def main() -> int:
    """Measure, print, and return 0 when the target is met."""
    compile_bytecode()
    script = shutil.which("kvruntime", path=str(Path(sys.executable).parent)) or "kvruntime"
    with tempfile.TemporaryDirectory() as scratch:
        home = str(Path(scratch) / "home")
        subprocess.run(
            [script, "set", APP, "notes", "k", "v", "--create", "--home", home], check=True
        )
        rows = medians(
            {
                "python -c pass": [sys.executable, "-c", "pass"],
                "kvruntime --help": [script, "--help"],
                "imports of a get": [
                    sys.executable,
                    "-c",
                    "import kvruntime.cli.keys, kvruntime.runtime, kvruntime.client",
                ],
                "kvruntime get": [script, "get", APP, "notes", "k", "--home", home],
            }
        )
    base = rows["python -c pass"]
    print(f"medians of {RUNS} fresh processes each         wall            cpu (user+sys)")
    for name, t in rows.items():
        print(
            f"{name:20} {t.wall * 1e3:8.1f} ms {t.wall / base.wall:5.1f} x"
            f"   {t.cpu * 1e3:8.1f} ms {t.cpu / base.cpu:5.1f} x python -c pass"
        )
    ratio = rows["kvruntime get"].wall / base.wall
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"target: kvruntime get <= {TARGET:g} x python -c pass: {ratio:.1f} x, {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
