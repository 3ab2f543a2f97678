"""``run`` and ``bench``: programs of the kvruntime checkout, found in the current directory.

Neither is part of the installed package: ``run`` imports ``examples.host``
(what ``make run`` starts) and ``bench`` runs ``python -m benchmarks``,
both from the current directory, as ``make`` does from the checkout.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from ._app import (
    EXIT_HOME,
    EXIT_KV,
    CliError,
    cli,
    home_option,
    storage,
    verbose_option,
    verbosity,
)
from ._session import check_home, home_in_use

__all__ = ["bench", "run"]


def _find(module: str) -> bool:
    """Whether ``module`` is importable with the current directory first on the path."""
    import importlib.util

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

    Run it from the kvruntime checkout; stop it with Ctrl-C. With -v the
    runtime's log at info level goes to stderr, with -vv its debug log too
    (as `python -m examples.host -v`). A home in use is refused (exit 3)
    before the demo starts.

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
    check_home(home, create=True)
    _refuse_a_home_in_use(home)
    # The host sets up logging itself, and its -v is debug: for -vv hand the
    # root logger back as Python starts it and pass -v on; for -v keep ours
    # (info, set up by the -v option) and pass nothing.
    if verbosity() >= 2:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    import runpy

    if (url := storage()) is not None:  # issue 13: the host reads $KVRUNTIME_STORAGE
        os.environ["KVRUNTIME_STORAGE"] = url
    sys.argv = ["examples.host", "--home", str(home), *(["-v"] if verbosity() >= 2 else [])]
    runpy.run_module("examples.host", run_name="__main__", alter_sys=True)


def _refuse_a_home_in_use(home: Path) -> None:
    """Exit 3 if a runtime holds ``home`` (taking its lock for a moment, as a runtime would)."""
    from ..kernel.capabilities import CapabilityStore, CapabilityStoreError, HomeInUse
    from ..runtime import DEFAULT_NODE
    from ._session import caps_path

    if not caps_path(home).exists():
        return  # no home yet: the demo makes it
    store = CapabilityStore(caps_path(home), node=DEFAULT_NODE)
    try:
        store.open()
    except HomeInUse:
        raise home_in_use(home) from None
    except CapabilityStoreError as exc:
        raise CliError(f"cannot open home {home}: {exc}", EXIT_HOME) from None
    store.close()


#: Where ``bench --quick`` writes unless given ``--out`` (as ``make bench-quick``): never
#: over the committed full run in benchmarks/results.
QUICK_OUT = ".bench-quick"


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run the benchmarks (`python -m benchmarks ARGS...`) from the kvruntime checkout.

    A --quick run writes to .bench-quick/ unless given --out: the committed
    benchmarks/results/ holds full runs only. The benchmark's own options
    follow.

    \b
    Example:
      kvruntime bench --quick
    """
    import subprocess

    found = _find("benchmarks")
    if "-h" in args or "--help" in args:
        click.echo(ctx.get_help())
        if found:
            click.echo("\nThe benchmark's options (python -m benchmarks --help):\n")
            sys.stdout.flush()
            subprocess.run([sys.executable, "-m", "benchmarks", "--help"], check=False)
        return
    if not found:
        raise CliError(
            f"no benchmarks in {os.getcwd()}: run this from the kvruntime checkout "
            "(it needs the benchmarks package, python -m benchmarks)",
            EXIT_KV,
        )
    argv = list(args)
    given_out = any(a == "--out" or a.startswith("--out=") for a in argv)
    if "--quick" in argv and not given_out:
        argv += ["--out", QUICK_OUT]
    completed = subprocess.run([sys.executable, "-m", "benchmarks", *argv], check=False)
    sys.exit(completed.returncode)
