"""The ``kvruntime`` command line (console script ``kvruntime = kvruntime.cli:main``).

One module per group of commands: ``keys`` (get, set, del, scan),
``atomics`` (incr, cas), ``access`` (share, revoke, rm-db), ``send``,
``dumpload`` (dump, load), ``admin`` (ls, caps, repair), ``host`` (run,
bench), ``serve`` (the explorer page), ``shell`` (commands at a prompt).
``_app`` holds the click group, shared options and exit codes; ``_session``
how a command reaches kv:distro:sys through a Runtime.
Importing this package imports click and ``_app`` only: a command's module
is imported when the command is looked up (``_app.COMMAND_MODULES``), and
each command imports the runtime, rich or msgpack when it runs.
"""

from __future__ import annotations

from ._app import CliError, cli

__all__ = ["CliError", "cli", "main"]


def main() -> None:
    """Entry point of the ``kvruntime`` console script."""
    cli(prog_name="kvruntime")
