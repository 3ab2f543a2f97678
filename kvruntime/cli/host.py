"""``run`` and ``bench``: programs of the kvruntime checkout, found in the current directory.

Neither is part of the installed package: ``run`` imports ``examples.host``
(what ``make run`` starts) and ``bench`` runs ``python -m benchmarks``,
both from the current directory, as ``make`` does from the checkout.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import click

from ._app import EXIT_KV, CliError, cli, home_option, verbose_option, verbosity

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

    Run it from the kvruntime checkout; stop it with Ctrl-C. With -v (or
    -vv) the host shows the runtime's log on stderr, as `python -m
    examples.host -v` does.

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
    # The host sets up logging itself (its -v is its only level): hand the
    # root logger back as Python starts it, then pass the verbosity on.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    sys.argv = ["examples.host", "--home", str(home), *(["-v"] if verbosity() else [])]
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
