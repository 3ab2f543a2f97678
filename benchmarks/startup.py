"""``python -m benchmarks.startup``: what a ``kvruntime get`` costs, as a fresh process.

Issue 15's target: the median wall time of ``kvruntime get`` over 20 fresh
processes is at most 6 x that of ``python -c pass`` (the interpreter alone).
Beside it, the parts: the imports a ``get`` needs (``kvruntime.cli`` with the
runtime and the client), and ``kvruntime --help`` (click and the CLI only).
Prints one line per command and the verdict; exits 1 if the target is missed.

The package's bytecode is compiled first, as pip does when it installs a
wheel: an editable checkout under ``PYTHONDONTWRITEBYTECODE`` (this
machine's environment) would otherwise compile every kvruntime module from
source at each start, which no installed copy does.
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["RUNS", "TARGET", "compile_bytecode", "main", "median_seconds"]

RUNS = 20
TARGET = 6.0
APP = "bench:startup.os"


def median_seconds(argv: list[str], runs: int = RUNS) -> float:
    """The median wall seconds of ``argv`` over ``runs`` fresh processes (after one warm-up)."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
        rows = {
            "python -c pass": median_seconds([sys.executable, "-c", "pass"]),
            "kvruntime --help": median_seconds([script, "--help"]),
            "imports of a get": median_seconds(
                [sys.executable, "-c", "import kvruntime.cli, kvruntime.runtime, kvruntime.client"]
            ),
            "kvruntime get": median_seconds([script, "get", APP, "notes", "k", "--home", home]),
        }
    base = rows["python -c pass"]
    for name, seconds in rows.items():
        print(f"{name:20} {seconds * 1e3:8.1f} ms  {seconds / base:5.1f} x python -c pass")
    ratio = rows["kvruntime get"] / base
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"target: kvruntime get <= {TARGET:g} x python -c pass: {ratio:.1f} x, {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
