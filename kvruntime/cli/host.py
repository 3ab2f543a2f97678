"""``run`` and ``bench``: programs of the kvruntime checkout, found in the current directory.

Neither is part of the installed package: ``run`` imports ``examples.host``
(what ``make run`` starts) and ``bench`` runs ``python -m benchmarks``,
both from the current directory, as ``make`` does from the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import click

from ._app import EXIT_KV, CliError, cli, home_option, verbose_option

__all__ = ["bench", "run"]


def _find(module: str) -> bool:
    """Whether ``module`` is importable with the current directory first on the path."""
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


@cli.command()
@home_option
@verbose_option
def run(home: Path) -> None:
    """Run the demo host (examples/host.py, as `make run`) on --home.

    Run it from the kvruntime checkout; stop it with Ctrl-C.

    \b
    Example:
      kvruntime run --home ./data
    """
    if not _find("examples.host"):
        raise CliError(
            f"no demo host in {os.getcwd()}: run this from the kvruntime checkout "
            "(it needs examples/host.py, importable as examples.host)",
            EXIT_KV,
        )
    sys.argv = ["examples.host", "--home", str(home)]
    runpy.run_module("examples.host", run_name="__main__", alter_sys=True)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Run the benchmarks (`python -m benchmarks ARGS...`) from the kvruntime checkout.

    \b
    Example:
      kvruntime bench --quick
    """
    if not _find("benchmarks"):
        raise CliError(
            f"no benchmarks in {os.getcwd()}: run this from the kvruntime checkout "
            "(it needs the benchmarks package, python -m benchmarks)",
            EXIT_KV,
        )
    completed = subprocess.run([sys.executable, "-m", "benchmarks", *args], check=False)
    sys.exit(completed.returncode)
