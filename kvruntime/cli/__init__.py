"""The ``kvruntime`` command line (console script ``kvruntime = kvruntime.cli:main``).

One module per group of commands: ``keys`` (get, set, del, scan), ``send``,
``dumpload`` (dump, load), ``admin`` (ls, caps, repair), ``host`` (run,
bench). ``_app`` holds the click group, shared options and exit codes;
``_session`` how a command reaches kv:distro:sys through a Runtime.
"""

from __future__ import annotations

from . import admin, dumpload, host, keys, send
from ._app import CliError, cli

__all__ = ["CliError", "cli", "main"]

_COMMANDS = (admin, dumpload, host, keys, send)  # imported for their @cli.command side effect


def main() -> None:
    """Entry point of the ``kvruntime`` console script."""
    cli(prog_name="kvruntime")
